// The sidecar's tracer: decides whether requests are traced (the trace layer asks it), turns each finished sampled
// exchange into a span record (diagnostics channel), and hands it to the OTLP exporters: the control plane's
// receiver and any collector MeshConfig names. No export target: tracing is off and nothing subscribes.

import { performance } from 'node:perf_hooks';
import { httpExchangeChannel } from '../core/diagnostics.js';
import type { Logger } from '../core/log.js';
import type { SpanContext } from '../core/trace-context.js';
import { OtlpExporter, type OtlpExporterOptions, type OtlpPost } from './otlp-exporter.js';
import type { SpanRecord, SpanSource } from './otlp-spans.js';

/** What the tracer reads from a finished exchange (the proxy's HttpExchange satisfies it). */
export interface TraceFacts {
  trace: SpanContext | null;
  direction: string;
  startTime: number;
  endTime: number;
  method: string;
  path: string;
  authority: string;
  status: number;
  grpcStatus: string | null;
  errorCode: string | null;
  errorDetail: string | null;
  route: string | null;
  source: string | null;
  destination: string | null;
  peerIdentity: string | null;
  endpoint: string | null;
  attempts?: ReadonlyArray<unknown> | null;
}

/** An export target: a name for the metrics label and the receiver's trace URL. */
export interface TraceTarget {
  name: string;
  url: string;
  /** How to POST there (the control plane's verifies its certificate); default: the global fetch. */
  post?: OtlpPost;
}

export interface TracerOptions {
  source: SpanSource;
  onDropped(target: string, n: number, reason: string): void;
  onExported(target: string, n: number): void;
  log: Logger;
  /** Queue and batch sizes, intervals (tests make them small). */
  exporter?: Pick<OtlpExporterOptions, 'maxQueue' | 'maxBatch' | 'intervalMs' | 'timeoutMs'>;
}

/** The receiver path under an OTLP/HTTP base URL (http://collector:4318 -> http://collector:4318/v1/traces). */
export function tracesUrl(base: string): string {
  return base.replace(/\/+$/, '').replace(/\/v1\/traces$/, '') + '/v1/traces';
}

export class Tracer {
  /** Read by the trace layer on every request. */
  tracing = false;
  samplingPercent = 0;
  private exporters: OtlpExporter[] = [];
  private readonly onExchange = (msg: unknown): void => this.record(msg as TraceFacts);

  constructor(private readonly o: TracerOptions) {}

  /** Follows the config: the sampling rate, and the receivers (an exporter per URL, kept across changes). */
  configure(samplingPercent: number, targets: readonly TraceTarget[]): void {
    this.samplingPercent = samplingPercent;
    const keep: OtlpExporter[] = [];
    for (const t of targets) {
      const existing = this.exporters.find((e) => e.url === t.url) ?? keep.find((e) => e.url === t.url);
      if (existing !== undefined) {
        if (!keep.includes(existing)) keep.push(existing);
        continue;
      }
      keep.push(
        new OtlpExporter({
          url: t.url,
          ...(t.post !== undefined ? { post: t.post } : {}),
          source: this.o.source,
          ...this.o.exporter,
          onDropped: (n, reason) => this.o.onDropped(t.name, n, reason),
          onExported: (n) => this.o.onExported(t.name, n),
          log: this.o.log,
        }),
      );
    }
    for (const e of this.exporters) if (!keep.includes(e)) void e.close();
    this.exporters = keep;
    const on = keep.length > 0;
    if (on && !this.tracing) httpExchangeChannel.subscribe(this.onExchange);
    if (!on && this.tracing) httpExchangeChannel.unsubscribe(this.onExchange);
    this.tracing = on;
  }

  private record(ex: TraceFacts): void {
    const ctx = ex.trace;
    if (ctx === null || !ctx.sampled) return;
    // Wall clock now minus monotonic now: follows clock adjustments, unlike performance.timeOrigin in a long-lived process.
    const origin = Date.now() - performance.now();
    const rec: SpanRecord = {
      ctx,
      kind: ex.direction === 'inbound' ? 'server' : 'client',
      startMs: origin + ex.startTime,
      endMs: origin + ex.endTime,
      method: ex.method,
      path: ex.path,
      authority: ex.authority,
      status: ex.status,
      grpcStatus: ex.grpcStatus,
      errorCode: ex.errorCode,
      errorDetail: ex.errorDetail,
      route: ex.route,
      source: ex.source,
      destination: ex.destination,
      peerIdentity: ex.peerIdentity,
      endpoint: ex.endpoint,
      retries: ex.attempts ? Math.max(0, ex.attempts.length - 1) : 0,
    };
    const exporters = this.exporters;
    for (let i = 0; i < exporters.length; i++) (exporters[i] as OtlpExporter).push(rec);
  }

  /** Stops tracing and sends what is queued (best effort, bounded by the export timeout). */
  async close(): Promise<void> {
    const exporters = this.exporters;
    this.exporters = [];
    this.configure(this.samplingPercent, []);
    await Promise.all(exporters.map((e) => e.close()));
  }
}
