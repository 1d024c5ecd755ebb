// The config stream between a proxy and the control plane: one HTTP/2 stream (POST /api/v1/stream) per proxy, carrying
// newline-delimited JSON messages both ways. Both sides validate what they receive with these schemas.

import * as v from 'valibot';

export const STREAM_PATH = '/api/v1/stream';
/** Bumped on an incompatible change; a control plane refuses a proxy speaking another one (they ship in lockstep). */
export const STREAM_PROTOCOL = 'mycel-stream-v1';
/** A view larger than this is a protocol error (a scoped view is far smaller). */
export const MAX_CONTROL_MESSAGE_BYTES = 16 * 1024 * 1024;
/** What a proxy sends is small (a hello with its subscriptions at most); the control plane refuses more. */
export const MAX_PROXY_MESSAGE_BYTES = 4 * 1024 * 1024;

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

const names = v.pipe(v.array(v.pipe(str, v.minLength(1), v.maxLength(253))), v.maxLength(10_000));

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
