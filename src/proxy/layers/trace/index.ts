// Trace layer: gives each request this hop's span context (continuing the caller's trace, or starting one at the
// configured sampling rate) and rewrites the trace headers so the next hop's parent is this span. Off: one check.

import { newSpanId, newTraceId, readTraceHeaders, writeTraceHeaders, type SpanContext } from '../../../core/trace-context.js';
import type { HttpExchange } from '../../stack/exchange.js';
import type { HeaderList } from '../../stack/http-types.js';
import type { HttpLayer, HttpService } from '../../stack/service.js';

/** What the layer asks of the tracer: whether spans are made at all, and the rate new traces start at. */
export interface TracePolicy {
  readonly tracing: boolean;
  /** 0..100: percentage of requests without a sampling decision that start a sampled trace. */
  readonly samplingPercent: number;
}

/** The part of an exchange this layer reads and writes. */
export interface TracedRequest {
  headers: HeaderList;
  trace: SpanContext | null;
}

/** Sets ex.trace and the outgoing trace headers. Unsampled contexts propagate too, so the next hop agrees. */
export function beginSpan(ex: TracedRequest, samplingPercent: number): void {
  const incoming = readTraceHeaders(ex.headers);
  const continued = incoming.traceId !== null;
  const sampled = incoming.sampled ?? (samplingPercent > 0 && Math.random() * 100 < samplingPercent);
  const ctx = {
    traceId: continued ? (incoming.traceId as string) : newTraceId(),
    spanId: newSpanId(),
    parentSpanId: continued ? incoming.parentId : null,
    sampled,
    traceState: incoming.traceState,
  };
  ex.trace = ctx;
  ex.headers = writeTraceHeaders(ex.headers, incoming, ctx);
}

class TraceHop implements HttpService {
  constructor(
    private readonly inner: HttpService,
    private readonly policy: TracePolicy,
  ) {}

  call(ex: HttpExchange): void {
    const p = this.policy;
    if (p.tracing) beginSpan(ex, p.samplingPercent);
    this.inner.call(ex);
  }
}

export const traceLayer = (policy: TracePolicy): HttpLayer => (inner) => new TraceHop(inner, policy);
