// Turns the tracer's light span records into the ReadableSpan-shaped objects the OpenTelemetry OTLP serializers take.
// Runs at batch time, off the request path: the mesh attributes are only spelled out here.

import type { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { SpanContext } from '../core/trace-context.js';

/** What the tracer keeps of one finished hop (copied from the exchange, which is not held). */
export interface SpanRecord {
  readonly ctx: SpanContext;
  readonly kind: 'client' | 'server';
  /** Unix milliseconds, fractional. */
  readonly startMs: number;
  readonly endMs: number;
  readonly method: string;
  readonly path: string;
  readonly authority: string;
  readonly status: number;
  readonly grpcStatus: string | null;
  readonly errorCode: string | null;
  readonly errorDetail: string | null;
  readonly route: string | null;
  readonly source: string | null;
  readonly destination: string | null;
  /** The mTLS peer: the destination's identity outbound, the caller's inbound. */
  readonly peerIdentity: string | null;
  readonly endpoint: string | null;
  readonly retries: number;
}

/** Who made the spans: the OTLP resource (service.name is the sidecar's service). */
export interface SpanSource {
  readonly service: string;
  readonly namespace: string;
  /** The sidecar's own SPIFFE ID (read at batch time: it follows certificate rotation). */
  identity(): string;
}

export type ReadableSpans = Parameters<typeof ProtobufTraceSerializer.serializeRequest>[0];

const SCOPE = { name: 'mycel-proxy', version: '0.1.0' };
// API SpanKind values (the serializers add one for OTLP): SERVER 1, CLIENT 2. Status codes: UNSET 0, ERROR 2.
const KIND_SERVER = 1;
const KIND_CLIENT = 2;

function hrTime(ms: number): [number, number] {
  const s = Math.floor(ms / 1000);
  const ns = Math.min(999_999_999, Math.round((ms - s * 1000) * 1e6));
  return [s, ns];
}

/** The span failed: the mesh failed it, the answer is a 5xx, or a gRPC status other than OK. */
export function spanFailed(r: SpanRecord): boolean {
  return r.errorCode !== null || r.status >= 500 || r.status === 0 || (r.grpcStatus !== null && r.grpcStatus !== '0');
}

function spanName(r: SpanRecord): string {
  const q = r.path.indexOf('?');
  const path = q < 0 ? r.path : r.path.slice(0, q);
  return `${r.method} ${path.length > 120 ? path.slice(0, 120) + '...' : path}`;
}

function attributes(r: SpanRecord, self: string): Record<string, string | number> {
  const outbound = r.kind === 'client';
  const a: Record<string, string | number> = {
    'mycel.direction': outbound ? 'outbound' : 'inbound',
    'http.request.method': r.method,
    'url.path': r.path,
    'server.address': r.authority,
    'http.response.status_code': r.status,
    'mycel.retries': r.retries,
  };
  if (r.source !== null) a['mycel.source.service'] = r.source;
  if (r.destination !== null) a['mycel.destination.service'] = r.destination;
  const peer = r.peerIdentity;
  if (outbound) {
    a['mycel.source.identity'] = self;
    if (peer !== null) a['mycel.destination.identity'] = peer;
  } else {
    if (peer !== null) a['mycel.source.identity'] = peer;
    a['mycel.destination.identity'] = self;
  }
  if (r.route !== null) a['mycel.route'] = r.route;
  if (r.endpoint !== null) a['mycel.upstream.endpoint'] = r.endpoint;
  if (r.grpcStatus !== null) a['rpc.grpc.status_code'] = Number(r.grpcStatus);
  if (r.errorCode !== null) a['mycel.error'] = r.errorCode;
  if (r.errorDetail !== null) a['mycel.error.detail'] = r.errorDetail;
  return a;
}

/** One resource object for the whole batch: the serializers group spans by resource identity. */
export function toReadableSpans(records: readonly SpanRecord[], source: SpanSource): ReadableSpans {
  const self = source.identity();
  const resource = { attributes: { 'service.name': source.service, 'service.namespace': source.namespace, 'mycel.identity': self, 'telemetry.sdk.name': 'mycel' } };
  const out = [];
  for (const r of records) {
    const c = r.ctx;
    const traceFlags = c.sampled ? 1 : 0;
    const traceState = c.traceState === null ? undefined : { serialize: () => c.traceState as string };
    const failed = spanFailed(r);
    out.push({
      name: spanName(r),
      kind: r.kind === 'client' ? KIND_CLIENT : KIND_SERVER,
      spanContext: () => ({ traceId: c.traceId, spanId: c.spanId, traceFlags, traceState }),
      parentSpanContext: c.parentSpanId === null ? undefined : { traceId: c.traceId, spanId: c.parentSpanId, traceFlags, isRemote: true },
      startTime: hrTime(r.startMs),
      endTime: hrTime(r.endMs),
      duration: hrTime(r.endMs - r.startMs),
      status: failed ? { code: 2, message: r.errorCode ?? (r.status === 0 ? 'no response' : `status ${r.grpcStatus !== null && r.grpcStatus !== '0' ? `grpc ${r.grpcStatus}` : r.status}`) } : { code: 0 },
      attributes: attributes(r, self),
      links: [],
      events: [],
      ended: true,
      resource,
      instrumentationScope: SCOPE,
      droppedAttributesCount: 0,
      droppedEventsCount: 0,
      droppedLinksCount: 0,
    });
  }
  return out as unknown as ReadableSpans;
}
