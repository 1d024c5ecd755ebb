// The control plane's recent traces: spans received over OTLP, grouped by trace id, so traces are visible with no
// collector installed. Bounded three ways (traces, spans per trace, spans in all); the least recently updated trace
// goes first.

import type { TraceSummary } from '../../api/v1alpha1/control-api.js';
import type { ReceivedSpan } from './otlp-decode.js';

export type { TraceSummary };

export interface TraceBufferLimits {
  maxTraces: number;
  maxSpansPerTrace: number;
  maxSpans: number;
}

export const DEFAULT_TRACE_LIMITS: TraceBufferLimits = { maxTraces: 1000, maxSpansPerTrace: 256, maxSpans: 20_000 };

interface Trace {
  spans: Map<string, ReceivedSpan>;
  /** Spans refused because the trace was full. */
  dropped: number;
}

export class TraceBuffer {
  /** Insertion order is update order: the first entry is the least recently updated trace. */
  private readonly traces = new Map<string, Trace>();
  private spanCount = 0;
  /** Spans not kept (trace full), for the metrics. */
  droppedSpans = 0;

  constructor(readonly limits: TraceBufferLimits = DEFAULT_TRACE_LIMITS) {}

  get size(): number {
    return this.traces.size;
  }

  get spans(): number {
    return this.spanCount;
  }

  add(spans: readonly ReceivedSpan[]): void {
    for (const s of spans) {
      let t = this.traces.get(s.traceId);
      if (t === undefined) t = { spans: new Map(), dropped: 0 };
      else this.traces.delete(s.traceId); // re-inserted below: most recently updated
      this.traces.set(s.traceId, t);
      if (t.spans.has(s.spanId)) {
        t.spans.set(s.spanId, s); // a re-sent span replaces the old copy
        continue;
      }
      if (t.spans.size >= this.limits.maxSpansPerTrace) {
        t.dropped++;
        this.droppedSpans++;
        continue;
      }
      t.spans.set(s.spanId, s);
      this.spanCount++;
    }
    this.evict();
  }

  private evict(): void {
    for (const [id, t] of this.traces) {
      if (this.traces.size <= this.limits.maxTraces && this.spanCount <= this.limits.maxSpans) return;
      this.traces.delete(id);
      this.spanCount -= t.spans.size;
    }
  }

  /** Newest first (by start time); only traces with a span of `service` when given. */
  list(limit: number, service?: string): TraceSummary[] {
    const out: TraceSummary[] = [];
    for (const [id, t] of this.traces) {
      const s = summarize(id, [...t.spans.values()]);
      if (service === undefined || s.services.includes(service)) out.push(s);
    }
    out.sort((a, b) => b.startTime - a.startTime);
    return out.slice(0, limit);
  }

  /** The trace's spans in start order, or undefined. */
  get(traceId: string): ReceivedSpan[] | undefined {
    const t = this.traces.get(traceId);
    return t === undefined ? undefined : [...t.spans.values()].sort((a, b) => a.startTime - b.startTime);
  }
}

/** The root is the earliest span whose parent is not in the trace (the trace may still be missing its true root). */
export function summarize(traceId: string, spans: readonly ReceivedSpan[]): TraceSummary {
  const ids = new Set(spans.map((s) => s.spanId));
  let root: ReceivedSpan | undefined;
  let start = Infinity;
  let end = -Infinity;
  const services = new Set<string>();
  let error = false;
  for (const s of spans) {
    start = Math.min(start, s.startTime);
    end = Math.max(end, s.startTime + s.durationMs);
    services.add(s.service);
    if (s.status === 'error') error = true;
    const orphan = s.parentSpanId === null || !ids.has(s.parentSpanId);
    if (orphan && (root === undefined || s.startTime < root.startTime)) root = s;
  }
  return {
    traceId,
    rootService: root?.service ?? 'unknown',
    rootName: root?.name ?? '',
    startTime: start,
    durationMs: Math.round((end - start) * 1000) / 1000,
    spanCount: spans.length,
    services: [...services].sort(),
    error,
  };
}
