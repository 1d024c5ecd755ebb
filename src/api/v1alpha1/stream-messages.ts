// The config stream between a proxy and the control plane: one HTTP/2 stream (POST /api/v1/stream) per proxy, carrying
// newline-delimited JSON messages both ways. Both sides validate what they receive with these schemas.

import * as v from 'valibot';
import { LATENCY_BUCKET_COUNT } from '../../telemetry/latency-buckets.js';
import { TAP_MAX_BATCH, TapEvent, TapFilter } from './tap-messages.js';

export const STREAM_PATH = '/api/v1/stream';
/** Bumped on an incompatible change; a control plane refuses a proxy speaking another one (they ship in lockstep). */
export const STREAM_PROTOCOL = 'mycel-stream-v1';
/** A view larger than this is a protocol error (a scoped view is far smaller). */
export const MAX_CONTROL_MESSAGE_BYTES = 16 * 1024 * 1024;
/** What a proxy sends is small (a hello with its subscriptions at most); the control plane refuses more. */
export const MAX_PROXY_MESSAGE_BYTES = 4 * 1024 * 1024;
/**
 * The longest a proxy waits between two attempts to reach the control plane (its jittered backoff window's cap). A
 * replica that starts after an outage can count on every surviving sidecar trying again within this time.
 */
export const RECONNECT_BACKOFF_MAX_MS = 10_000;

const str = v.string();
const labels = v.record(v.string(), v.string());

export const EndpointRegistration = v.object({
  /** The address other sidecars reach this one on, and its inbound (mTLS) port. */
  address: v.pipe(str, v.minLength(1), v.maxLength(255)),
  port: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535)),
  labels: v.optional(labels, {}),
  /** The app behind the sidecar is ready for traffic (readiness reported by its own sidecar). */
  ready: v.optional(v.boolean(), true),
  /** The app's own port: lets the control plane serve a service nobody has declared with a Service yet. */
  appPort: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(65535))),
});
export type EndpointRegistration = v.InferOutput<typeof EndpointRegistration>;

// Tap's shapes live in their own module (no Node types), so that the dashboard can read them too.
export { TAP_MAX_BATCH, TAP_MAX_TEXT, TapEvent, TapFilter } from './tap-messages.js';

/** Names a tap session of the control plane (one per API client). */
const tapId = v.pipe(str, v.minLength(1), v.maxLength(64));

const names = v.pipe(v.array(v.pipe(str, v.minLength(1), v.maxLength(253))), v.maxLength(10_000));

/** Series one stats summary may carry; a proxy folds what is beyond into `dropped` (bounds the control plane's memory). */
export const STATS_MAX_SERIES = 500;
/** How often a proxy sends its golden-signal summary unless the welcome says otherwise. */
export const STATS_INTERVAL_MS = 10_000;
const count = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(Number.MAX_SAFE_INTEGER));
const serviceName = v.pipe(str, v.minLength(1), v.maxLength(253));

/**
 * One series of a summary: what a proxy saw during one interval. `service`: the service that served (inbound, at the
 * destination's sidecar); `route`: a route of destination `service` (outbound); `edge`: calls from `source` to
 * `service` (outbound at the caller, or inbound from outside the mesh with source "unknown").
 */
export const StatsSeries = v.pipe(
  v.object({
    kind: v.picklist(['service', 'route', 'edge']),
    service: serviceName,
    route: v.optional(v.pipe(str, v.minLength(1), v.maxLength(512))),
    source: v.optional(serviceName),
    requests: count,
    /** Status < 500, no mesh error, and for gRPC grpc-status 0 (or none with HTTP 200). */
    success: count,
    /** Requests per latency bucket (telemetry/latency-buckets.ts: fixed bounds, the last bucket open). */
    latency: v.pipe(v.array(count), v.length(LATENCY_BUCKET_COUNT)),
    sumMs: v.pipe(v.number(), v.minValue(0)),
  }),
  v.check((s) => s.success <= s.requests, 'success exceeds requests'),
  v.check((s) => s.latency.reduce((a, b) => a + b, 0) === s.requests, 'latency buckets do not add up to requests'),
  v.check((s) => (s.kind === 'route') === (s.route !== undefined) && (s.kind === 'edge') === (s.source !== undefined), 'route goes with kind route, source with kind edge'),
);
export type StatsSeries = v.InferOutput<typeof StatsSeries>;

/** Proxy -> control plane. */
export const ProxyMessage = v.variant('type', [
  v.object({
    type: v.literal('hello'),
    protocol: v.literal(STREAM_PROTOCOL),
    /** Unique per proxy process; a reconnect keeps it. */
    proxyId: v.pipe(str, v.minLength(1), v.maxLength(200)),
    service: v.pipe(str, v.minLength(1), v.maxLength(63)),
    namespace: v.optional(v.pipe(str, v.minLength(1), v.maxLength(63)), 'default'),
    /** Absent for a proxy that takes config but serves no endpoint (a client-only sidecar, a bench client). */
    endpoint: v.optional(EndpointRegistration),
    /** Host names the proxy needs resolved: its upstream bindings and what it has called before. */
    subscribe: v.optional(names, []),
    /** The version the proxy serves now (from a previous connection or its persisted last good config). */
    version: v.optional(v.number()),
  }),
  v.object({ type: v.literal('subscribe'), names }),
  /** Registers (or updates) the endpoint after hello, e.g. once the sidecar knows its inbound port. */
  v.object({ type: v.literal('register'), endpoint: EndpointRegistration }),
  v.object({ type: v.literal('ack'), version: v.number() }),
  v.object({ type: v.literal('nack'), version: v.number(), reason: v.pipe(str, v.maxLength(4096)) }),
  v.object({ type: v.literal('heartbeat') }),
  v.object({ type: v.literal('ready'), ready: v.boolean() }),
  /** Clean shutdown: deregister the endpoint now instead of when the lease lapses. */
  v.object({ type: v.literal('goodbye') }),
  /** Events of a tap the control plane started, batched; `dropped` counts those the proxy could not send. */
  v.object({ type: v.literal('tap-events'), id: tapId, events: v.pipe(v.array(TapEvent), v.maxLength(TAP_MAX_BATCH)), dropped: v.pipe(v.number(), v.integer(), v.minValue(0)) }),
  /** The proxy's mesh certificate and trust bundle now (after each issuance and bundle change), for rotation and `mycel check`. */
  v.object({
    type: v.literal('identity'),
    /** Unix ms. */
    notAfter: v.number(),
    issuedAt: v.number(),
    /** SHA-256 fingerprint of the root its chain leads to. */
    root: v.pipe(str, v.maxLength(64)),
    trustedRoots: v.pipe(v.array(v.pipe(str, v.maxLength(64))), v.maxLength(100)),
  }),
  /** Golden signals since the previous summary (every statsIntervalMs of the welcome). */
  v.object({
    type: v.literal('stats'),
    intervalMs: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(3_600_000)),
    series: v.pipe(v.array(StatsSeries), v.maxLength(STATS_MAX_SERIES)),
    /** Observations left out because the proxy already had STATS_MAX_SERIES series in this interval. */
    dropped: v.optional(count, 0),
  }),
]);
export type ProxyMessage = v.InferOutput<typeof ProxyMessage>;

/** Control plane -> proxy. */
export const ControlMessage = v.variant('type', [
  v.object({
    type: v.literal('welcome'),
    /** The replica that holds this stream (for `mycel get proxies` and logs). */
    replica: str,
    /** The proxy must send something (a heartbeat at least) this often, or its lease lapses after leaseMs. */
    heartbeatMs: v.number(),
    leaseMs: v.number(),
    /** How often the proxy sends a stats summary (absent: STATS_INTERVAL_MS). */
    statsIntervalMs: v.optional(v.pipe(v.number(), v.minValue(100))),
  }),
  v.object({
    type: v.literal('config'),
    /** The store revision the view was computed at; the proxy ACKs or NACKs exactly this number. */
    version: v.number(),
    /** The proxy's whole scoped view: every resource it needs, registered endpoints merged into the Services. */
    resources: v.array(v.unknown()),
    /** Subscribed names that no service answers to (the proxy fails such requests with unknown-service). */
    unresolved: v.array(str),
  }),
  v.object({ type: v.literal('error'), code: str, message: str }),
  /** Starts (with its filter) or stops a tap on the proxy; the proxy answers with tap-events messages. */
  v.object({ type: v.literal('tap'), id: tapId, action: v.picklist(['start', 'stop']), filter: v.optional(TapFilter, {}) }),
  /** The mesh CA's trust bundle (every current root, PEM) and the root new certificates come from. */
  v.object({ type: v.literal('trust'), bundle: str, activeRoot: str }),
]);
export type ControlMessage = v.InferOutput<typeof ControlMessage>;

/** Splits a byte stream into newline-delimited JSON messages, bounded in size. */
export class LineDecoder {
  private buffered: Buffer[] = [];
  private size = 0;

  constructor(private readonly maxBytes: number) {}

  /** Returns complete lines; throws when one grows beyond maxBytes. */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(10); nl !== -1; nl = chunk.indexOf(10, start)) {
      const part = chunk.subarray(start, nl);
      if (this.size > 0) {
        this.buffered.push(part);
        lines.push(Buffer.concat(this.buffered).toString('utf8'));
        this.buffered = [];
        this.size = 0;
      } else {
        lines.push(part.toString('utf8'));
      }
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.size += rest.length;
      if (this.size > this.maxBytes) throw new Error(`a stream message exceeds ${this.maxBytes} bytes`);
      this.buffered.push(rest);
    }
    return lines;
  }
}

export function encodeMessage(m: ProxyMessage | ControlMessage): string {
  return JSON.stringify(m) + '\n';
}

export function parseProxyMessage(line: string): ProxyMessage | Error {
  return parseWith(ProxyMessage, line);
}

export function parseControlMessage(line: string): ControlMessage | Error {
  return parseWith(ControlMessage, line);
}

function parseWith<S extends v.GenericSchema>(schema: S, line: string): v.InferOutput<S> | Error {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    return new Error(`not JSON: ${(err as Error).message}`);
  }
  const r = v.safeParse(schema, value);
  if (r.success) return r.output;
  const issue = r.issues[0];
  const path = issue.path?.map((p) => String(p.key)).join('.') ?? '';
  return new Error(`invalid message${path ? ` at ${path}` : ''}: ${issue.message}`);
}
