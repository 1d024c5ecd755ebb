// Writes tap events to one client as NDJSON, off the request path, through a bounded buffer: a client slower than the
// traffic loses events (counted, and told so in the stream by a {"dropped": N} line) instead of growing memory.

import { parseTapFilter, parseTapLimit, type TapEvent, type TapFilter } from './tap.js';

/** The response a tap streams to (http.ServerResponse and Http2ServerResponse both fit). */
export interface TapOutput {
  write(chunk: string): boolean;
  end(): unknown;
  once(event: 'drain', listener: () => void): unknown;
}

/** The line that tells a client how many events it lost. */
export interface TapDroppedNotice {
  time: number;
  dropped: number;
  message: string;
}

export const DEFAULT_TAP_BUFFER = 1000;

export class TapStream {
  private queue: TapEvent[] = [];
  private waitingForDrain = false;
  private flushScheduled = false;
  private unreported = 0;
  private sent = 0;
  private ended = false;
  /** Events lost because the client did not keep up. */
  dropped = 0;
  /** Called once the stream ends (limit reached, or end()). */
  onEnd: () => void = () => {};

  constructor(
    private readonly out: TapOutput,
    /** Ends the stream after this many events; 0: no limit. */
    private readonly limit = 0,
    private readonly maxBuffered = DEFAULT_TAP_BUFFER,
  ) {}

  /** Events waiting for the client. */
  get buffered(): number {
    return this.queue.length;
  }

  /** Queues an event (cheap: the write happens later); drops it when the buffer is full. */
  offer(ev: TapEvent): void {
    if (this.ended) return;
    if (this.queue.length >= this.maxBuffered) {
      this.dropped++;
      this.unreported++;
      return;
    }
    this.queue.push(ev);
    this.schedule();
  }

  /** Events another party dropped for this client (a proxy that could not send them fast enough). */
  lost(n: number): void {
    if (this.ended || n <= 0) return;
    this.dropped += n;
    this.unreported += n;
    this.schedule();
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.queue = [];
    try {
      this.out.end();
    } catch {
      /* the client is gone */
    }
    this.onEnd();
  }

  private schedule(): void {
    if (this.flushScheduled || this.waitingForDrain) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (this.ended || this.waitingForDrain) return;
    let text = '';
    if (this.unreported > 0) {
      const notice: TapDroppedNotice = { time: Date.now(), dropped: this.unreported, message: `${this.unreported} events dropped: this tap client reads slower than the traffic` };
      text += JSON.stringify(notice) + '\n';
      this.unreported = 0;
    }
    const queue = this.queue;
    this.queue = [];
    let done = false;
    for (const ev of queue) {
      text += JSON.stringify(ev) + '\n';
      if (this.limit > 0 && ++this.sent >= this.limit) {
        done = true;
        break;
      }
    }
    if (text.length === 0) return;
    let ok: boolean;
    try {
      ok = this.out.write(text);
    } catch {
      this.end();
      return;
    }
    if (done) {
      this.end();
      return;
    }
    if (!ok) {
      this.waitingForDrain = true;
      this.out.once('drain', () => {
        this.waitingForDrain = false;
        if (this.queue.length > 0 || this.unreported > 0) this.schedule();
      });
    }
  }
}

/** An HTTP response a tap answers on (http.ServerResponse and Http2ServerResponse). */
export interface TapResponse extends TapOutput {
  writeHead(status: number, headers: Record<string, string | number>): unknown;
  on(event: 'close', listener: () => void): unknown;
  flushHeaders?(): void;
}

/**
 * Answers a tap request: checks the query (400 with the reason when bad), then streams NDJSON until the client goes
 * or the limit is reached. `open` starts the tap that feeds the stream and returns what stops it, or an Error (503).
 */
export function serveTap(res: TapResponse, q: URLSearchParams, open: (filter: TapFilter, stream: TapStream) => (() => void) | Error, needService = false): void {
  const filter = parseTapFilter(q);
  const limit = parseTapLimit(q);
  if (filter instanceof Error || limit instanceof Error || (needService && filter.service === undefined)) {
    const why = filter instanceof Error ? filter.message : limit instanceof Error ? limit.message : 'service is required: ?service=NAME';
    return refuse(res, 400, 'bad-request', why);
  }
  const stream = new TapStream(res, limit);
  const stop = open(filter, stream);
  if (stop instanceof Error) return refuse(res, 503, 'unavailable', stop.message);
  res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.flushHeaders?.(); // the client sees the stream open before the first event
  stream.onEnd = stop;
  res.on('close', () => stream.end());
}

function refuse(res: TapResponse, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: code, message }) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.write(body);
  res.end();
}
