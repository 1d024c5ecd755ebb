// The HTTP/2 server side of an exchange: a Node ServerHttp2Stream as the client's end, with gRPC-correct trailers
// (trailers-only responses stay a single HEADERS frame) and stream resets when a response cannot be completed.

import http2, { type OutgoingHttpHeaders, type ServerHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import type { Downstream, HttpExchange } from '../../stack/exchange.js';
import type { HeaderList } from '../../stack/http-types.js';
import { h2ToList, listIntoH2 } from './headers.js';

const { NGHTTP2_INTERNAL_ERROR } = http2.constants;
const kDownstream = Symbol('mycel.h2downstream');
type Tagged = ServerHttp2Stream & { [kDownstream]?: H2Downstream };

export class H2Downstream implements Downstream {
  readonly protocol = 'h2' as const;
  private ex: HttpExchange | null = null;
  private trailersIn: HeaderList | null = null;
  private trailersOut: HeaderList | null = null;
  /** The response was a single HEADERS frame with END_STREAM (gRPC trailers-only); later data is ignored. */
  private ended = false;

  constructor(readonly stream: ServerHttp2Stream) {
    (stream as Tagged)[kDownstream] = this;
  }

  attach(ex: HttpExchange): void {
    this.ex = ex;
    const s = this.stream;
    s.on('drain', onDrain);
    s.on('close', onClose);
    s.on('trailers', onTrailers);
    s.on('wantTrailers', onWantTrailers);
  }

  get headersSent(): boolean {
    return this.stream.headersSent;
  }

  writeInformational(status: number, headers: HeaderList): void {
    if (this.stream.headersSent || this.stream.destroyed) return;
    if (status === 100 || status === 103) this.stream.additionalHeaders(listIntoH2(headers, { ':status': status }));
  }

  writeHead(status: number, headers: HeaderList, ex: HttpExchange): void {
    const s = this.stream;
    if (s.destroyed || s.closed) return;
    const out: OutgoingHttpHeaders = listIntoH2(headers, { ':status': status });
    if (ex.grpc && out['grpc-status'] !== undefined) {
      // gRPC trailers-only: the status is in the one and only header block.
      this.ended = true;
      s.respond(out, { endStream: true });
      return;
    }
    // gRPC always ends with trailers; a body of unknown length (chunked from HTTP/1.1) may end with some too. When
    // none come, an empty trailer block ends the stream, which HTTP/2 allows.
    const waitForTrailers = ex.grpc || out.trailer !== undefined || (out['content-length'] === undefined && status !== 204 && status !== 304 && ex.method !== 'HEAD');
    s.respond(out, { waitForTrailers });
  }

  /** False once the client's stream is gone or no head was sent (writing then would make Node send one itself). */
  private get writable(): boolean {
    const s = this.stream;
    return !this.ended && !s.destroyed && !s.closed && s.headersSent;
  }

  write(chunk: Buffer): boolean {
    if (!this.writable) return true;
    return this.stream.write(chunk);
  }

  end(trailers: HeaderList | null): void {
    if (!this.writable) {
      this.ended = true;
      return;
    }
    this.ended = true;
    this.trailersOut = trailers;
    const s = this.stream;
    if (s.readableEnded || s.destroyed) {
      s.end();
      return;
    }
    // The app answered before the whole request body arrived (a 413, or a server that ignores bodies). Drop the
    // rest as it comes, and end the response only once the client has finished sending: ending it earlier makes
    // Node reset the stream, and the client's late DATA frames then count as protocol "glitches" until nghttp2
    // closes the whole session.
    s.removeAllListeners('data');
    s.once('end', onRequestEndedAfterResponse);
    s.resume();
    const timer = setTimeout(onRequestEndedAfterResponse.bind(s), LATE_BODY_WAIT_MS);
    timer.unref();
    s.once('close', () => clearTimeout(timer));
  }

  abort(): void {
    if (!this.stream.destroyed) this.stream.close(NGHTTP2_INTERNAL_ERROR);
  }

  requestTrailers(): HeaderList | null {
    return this.trailersIn;
  }

  onTrailers(headers: IncomingHttpHeaders): void {
    this.trailersIn = h2ToList(headers);
  }

  sendTrailers(): void {
    const t = this.trailersOut;
    this.stream.sendTrailers(t === null ? {} : listIntoH2(t, {}));
  }

  closed(): void {
    const ex = this.ex;
    if (ex !== null && !ex.finished) ex.onDownstreamClosed();
  }

  drained(): void {
    this.ex?.onDownstreamDrain();
  }
}

/** How long a response waits for a client to finish a request body the app did not read. */
const LATE_BODY_WAIT_MS = 5000;

function onRequestEndedAfterResponse(this: ServerHttp2Stream): void {
  if (!this.destroyed && !this.writableEnded) this.end();
}

function onDrain(this: Tagged): void {
  this[kDownstream]?.drained();
}

function onClose(this: Tagged): void {
  this[kDownstream]?.closed();
}

function onTrailers(this: Tagged, headers: IncomingHttpHeaders): void {
  this[kDownstream]?.onTrailers(headers);
}

function onWantTrailers(this: Tagged): void {
  this[kDownstream]?.sendTrailers();
}
