// The HTTP/1.1 server side of an exchange: turns a Node IncomingMessage into the request the proxy forwards, and
// writes the upstream's response (or the mesh's error) back through the ServerResponse with backpressure.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Downstream, HttpExchange } from '../../stack/exchange.js';
import { HOP_BY_HOP, type HeaderList } from '../../stack/http-types.js';

const kExchange = Symbol('mycel.exchange');
type Tagged = { [kExchange]?: HttpExchange };

export class H1Downstream implements Downstream {
  readonly protocol = 'http/1.1' as const;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    /** Close the client connection after this response (the proxy is draining). */
    private readonly closeAfter: () => boolean,
  ) {}

  /** Links the response's events to the exchange with shared handlers (no closures per request). */
  attach(ex: HttpExchange): void {
    (this.res as ServerResponse & Tagged)[kExchange] = ex;
    this.res.on('drain', onResDrain);
    this.res.on('close', onResClose);
  }

  get headersSent(): boolean {
    return this.res.headersSent;
  }

  writeInformational(status: number, headers: HeaderList): void {
    if (this.res.headersSent) return;
    if (status === 100) {
      this.res.writeContinue();
    } else if (status === 103) {
      const hints: Record<string, string | string[]> = {};
      for (let i = 0; i < headers.length; i += 2) {
        const name = headers[i] as string;
        const prev = hints[name];
        hints[name] = prev === undefined ? (headers[i + 1] as string) : ([] as string[]).concat(prev, headers[i + 1] as string);
      }
      if (hints.link !== undefined) this.res.writeEarlyHints(hints as { link: string | string[] });
    }
    // Other 1xx codes have no meaning to forward across protocols; they are dropped as RFC 9110 allows.
  }

  writeHead(status: number, headers: HeaderList): void {
    const res = this.res;
    if (this.closeAfter()) res.shouldKeepAlive = false;
    // A flat [name, value, ...] list keeps repeated fields (Set-Cookie) as they came.
    res.writeHead(status, headers);
  }

  write(chunk: Buffer): boolean {
    return this.res.write(chunk);
  }

  end(trailers: HeaderList | null): void {
    if (trailers !== null && trailers.length > 0) {
      const t: Record<string, string> = {};
      for (let i = 0; i < trailers.length; i += 2) t[trailers[i] as string] = trailers[i + 1] as string;
      this.res.addTrailers(t);
    }
    this.res.end();
  }

  abort(): void {
    this.res.destroy();
  }

  requestTrailers(): HeaderList | null {
    const raw = this.req.rawTrailers;
    if (raw.length === 0) return null;
    return requestHeaderList(raw);
  }
}

/** The exchange a ServerResponse belongs to, if the proxy made one for it. */
export function exchangeOfResponse(res: ServerResponse): HttpExchange | undefined {
  return (res as ServerResponse & Tagged)[kExchange];
}

function onResDrain(this: ServerResponse & Tagged): void {
  this[kExchange]?.onDownstreamDrain();
}

function onResClose(this: ServerResponse & Tagged): void {
  const ex = this[kExchange];
  if (ex !== undefined && !this.writableFinished) ex.onDownstreamClosed();
}

/**
 * Request fields to forward from Node's rawHeaders: names lower-cased, hop-by-hop fields and those named by
 * Connection dropped, `te` kept only as `trailers`.
 */
export function requestHeaderList(raw: string[]): HeaderList {
  const out: HeaderList = [];
  let connectionNamed: string | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    const value = raw[i + 1] as string;
    if (HOP_BY_HOP.has(name)) {
      if (name === 'connection') connectionNamed = connectionNamed === null ? value.toLowerCase() : `${connectionNamed},${value.toLowerCase()}`;
      continue;
    }
    if (name === 'te') {
      if (value.trim().toLowerCase() === 'trailers') out.push('te', 'trailers');
      continue;
    }
    out.push(name, value);
  }
  if (connectionNamed === null) return out;
  const named = connectionNamed.split(',').map((s) => s.trim()).filter((s) => s && s !== 'close' && s !== 'keep-alive');
  if (named.length === 0) return out;
  const kept: HeaderList = [];
  for (let i = 0; i < out.length; i += 2) if (!named.includes(out[i] as string)) kept.push(out[i] as string, out[i + 1] as string);
  return kept;
}
