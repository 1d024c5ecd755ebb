// Sends span records to one OTLP/HTTP receiver (protobuf, POST .../v1/traces) in batches from a bounded queue. When
// the receiver is slow or down the queue does not grow: new spans are dropped and counted. One export at a time.

import type { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { Logger } from '../core/log.js';
import { toReadableSpans, type SpanRecord, type SpanSource } from './otlp-spans.js';

/** One POST of an export request; resolves with the status once the answer was read. */
export type OtlpPost = (url: string, init: { method: 'POST'; headers: Record<string, string>; body: Uint8Array; signal: AbortSignal }) => Promise<{ status: number; arrayBuffer(): Promise<ArrayBuffer> }>;

export interface OtlpExporterOptions {
  /** Full URL of the receiver's trace endpoint (http://host:4318/v1/traces). */
  url: string;
  /** Default: the global fetch. */
  post?: OtlpPost;
  source: SpanSource;
  /** Spans held while waiting to be sent; beyond it new spans are dropped. */
  maxQueue?: number;
  /** Spans per export request. */
  maxBatch?: number;
  /** How often a partial batch is sent. */
  intervalMs?: number;
  /** An export that takes longer is abandoned (its spans count as dropped). */
  timeoutMs?: number;
  onDropped(n: number, reason: 'queue-full' | 'export-failed'): void;
  onExported(n: number): void;
  log: Logger;
}

type Serializer = typeof ProtobufTraceSerializer;
let serializer: Promise<Serializer> | null = null;

/** The OpenTelemetry transformer is loaded on the first export only: a sidecar without tracing never pays for it. */
function loadSerializer(): Promise<Serializer> {
  serializer ??= import('@opentelemetry/otlp-transformer').then((m) => m.ProtobufTraceSerializer);
  return serializer;
}

export class OtlpExporter {
  readonly url: string;
  private queue: SpanRecord[] = [];
  private inFlight: Promise<void> | null = null;
  private readonly timer: NodeJS.Timeout;
  private readonly maxQueue: number;
  private readonly maxBatch: number;
  private readonly timeoutMs: number;
  /** Whether the last export failed (logs once per outage, not once per batch). */
  private failing = false;
  private closed = false;

  constructor(private readonly o: OtlpExporterOptions) {
    this.url = o.url;
    this.maxQueue = o.maxQueue ?? 2048;
    this.maxBatch = o.maxBatch ?? 512;
    this.timeoutMs = o.timeoutMs ?? 10_000;
    this.timer = setInterval(() => void this.flush(), o.intervalMs ?? 1000);
    this.timer.unref();
  }

  /** Spans waiting to be sent (never above maxQueue). */
  get queued(): number {
    return this.queue.length;
  }

  push(rec: SpanRecord): void {
    if (this.closed) return;
    if (this.queue.length >= this.maxQueue) {
      this.o.onDropped(1, 'queue-full');
      return;
    }
    this.queue.push(rec);
    if (this.queue.length >= this.maxBatch && this.inFlight === null) void this.flush();
  }

  /** Sends one batch if none is in flight; resolves when that export is over. */
  flush(): Promise<void> {
    if (this.inFlight !== null) return this.inFlight;
    if (this.queue.length === 0) return Promise.resolve();
    const batch = this.queue.length <= this.maxBatch ? this.queue : this.queue.slice(0, this.maxBatch);
    this.queue = batch === this.queue ? [] : this.queue.slice(this.maxBatch);
    this.inFlight = this.send(batch).finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  private async send(batch: SpanRecord[]): Promise<void> {
    try {
      const body = (await loadSerializer()).serializeRequest(toReadableSpans(batch, this.o.source));
      if (body === undefined) throw new Error('the serializer produced nothing');
      const res = await (this.o.post ?? fetch)(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-protobuf' },
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      await res.arrayBuffer();
      if (res.status < 200 || res.status >= 300) throw new Error(`the receiver answered ${res.status}`);
      this.o.onExported(batch.length);
      if (this.failing) this.o.log.info('trace export works again', { url: this.url });
      this.failing = false;
    } catch (err) {
      this.o.onDropped(batch.length, 'export-failed');
      const e = err as Error & { cause?: { code?: string } };
      if (!this.failing) this.o.log.warn('trace export failed; spans are dropped until the receiver answers', { url: this.url, reason: e.cause?.code ?? e.message });
      this.failing = true;
    }
  }

  /** Stops the timer and sends what is queued (bounded by the export timeout). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    for (let i = 0; i < 8 && (this.queue.length > 0 || this.inFlight !== null); i++) await this.flush();
    this.closed = true;
  }
}
