// One HTTP/1.1 client connection (plain TCP or mTLS): writes a request head and streams its body with backpressure,
// parses the response strictly, and hands itself back to its pool when the exchange left it reusable.

import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { MycelError, toMycelError } from '../../../core/errors.js';
import type { HeaderList, ResponseSink, UpstreamCall, UpstreamRequest } from '../../stack/http-types.js';
import { H1ParseError, ResponseParser, type ResponseEvents, type ResponseHead } from './response-parser.js';

export interface H1ConnectionOwner {
  release(conn: H1Connection): void;
  forget(conn: H1Connection): void;
  /** The connection is up (TCP connected, or TLS handshake done). */
  connected(conn: H1Connection): void;
  /** Called when a reused connection turned out dead before the request could be sent: run it again on a fresh one. */
  replay(req: UpstreamRequest, sink: ResponseSink, call: H1Call): void;
  readonly idleTimeoutMs: number;
  readonly poolIdleMs: number;
  readonly connectTimeoutMs: number;
  readonly maxHeadBytes: number;
}

const CRLF = '\r\n';
const LAST_CHUNK = Buffer.from('0\r\n\r\n');

/** The handle of a request in flight; stable across a replay onto a fresh connection. */
export class H1Call implements UpstreamCall {
  conn: H1Connection | null = null;
  aborted = false;

  resume(): void {
    this.conn?.resumeResponse();
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.conn?.abortCurrent();
  }
}

export class H1Connection implements ResponseEvents {
  private readonly parser: ResponseParser;
  private req: UpstreamRequest | null = null;
  private sink: ResponseSink | null = null;
  private call: H1Call | null = null;
  private connected = false;
  private closed = false;
  private responseStarted = false;
  private requestEnded = false;
  private responseEnded = false;
  private chunked = false;
  private bodyBytes = 0;
  private keepAlive = false;
  private bodyPaused = false;
  /** Requests completed on this connection. */
  served = 0;

  constructor(
    readonly socket: Socket,
    private readonly owner: H1ConnectionOwner,
    connectEvent: 'connect' | 'secureConnect',
  ) {
    this.parser = new ResponseParser(this, owner.maxHeadBytes);
    socket.setNoDelay(true);
    socket.setTimeout(owner.connectTimeoutMs);
    socket.once(connectEvent, this.onConnect);
    socket.on('data', this.onData);
    socket.on('end', this.onSocketEnd);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
    socket.on('timeout', this.onTimeout);
    socket.on('drain', this.onDrain);
  }

  get busy(): boolean {
    return this.req !== null;
  }

  get usable(): boolean {
    return !this.closed && !this.socket.destroyed;
  }

  dispatch(req: UpstreamRequest, sink: ResponseSink, call: H1Call): void {
    this.req = req;
    this.sink = sink;
    this.call = call;
    call.conn = this;
    this.responseStarted = false;
    this.requestEnded = false;
    this.responseEnded = false;
    this.bodyBytes = 0;
    this.keepAlive = false;
    this.bodyPaused = false;
    this.parser.reset(req.method);
    // The previous response may have ended while its reader had us paused.
    if (this.socket.isPaused()) this.socket.resume();
    if (this.connected) this.socket.setTimeout(this.owner.idleTimeoutMs);

    let head = req.method + ' ' + req.path + ' HTTP/1.1\r\nhost: ' + req.authority + CRLF;
    const h = req.headers;
    for (let i = 0; i < h.length; i += 2) head += h[i] + ': ' + h[i + 1] + CRLF;
    const body = req.body;
    this.chunked = body !== null && req.bodyLength < 0;
    if (this.chunked) head += 'transfer-encoding: chunked\r\n';
    else if (body !== null && !hasField(h, 'content-length')) head += 'content-length: ' + req.bodyLength + CRLF;
    head += CRLF;
    this.socket.write(head, 'latin1');
    if (body === null) {
      this.requestEnded = true;
      return;
    }
    body.on('data', this.onBodyData);
    body.on('end', this.onBodyEnd);
    body.on('error', this.onBodyError);
    body.on('aborted', this.onBodyError);
    if (body.isPaused()) body.resume();
  }

  resumeResponse(): void {
    if (!this.closed) this.socket.resume();
  }

  /** The caller gave up: a connection with a half-done exchange cannot be reused. */
  abortCurrent(): void {
    this.sink = null;
    this.destroy();
  }

  close(): void {
    if (!this.busy) this.destroy();
    else this.keepAlive = false;
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.detachBody();
    this.socket.destroy();
    this.owner.forget(this);
  }

  // ---- request body -------------------------------------------------------------------------------------------------

  private readonly onBodyData = (chunk: Buffer): void => {
    this.bodyBytes += chunk.length;
    this.req?.countBody(chunk.length);
    let ok: boolean;
    if (this.chunked) {
      if (chunk.length === 0) return;
      this.socket.cork();
      this.socket.write(chunk.length.toString(16) + CRLF, 'latin1');
      this.socket.write(chunk);
      ok = this.socket.write(CRLF, 'latin1');
      this.socket.uncork();
    } else {
      ok = this.socket.write(chunk);
    }
    if (!ok) {
      this.bodyPaused = true;
      this.req?.body?.pause();
    }
  };

  private readonly onDrain = (): void => {
    if (this.bodyPaused) {
      this.bodyPaused = false;
      this.req?.body?.resume();
    }
  };

  private readonly onBodyEnd = (): void => {
    const req = this.req;
    if (req === null) return;
    // An HTTP/2 stream can end and then turn out to be reset, and a peer can end a body short of its
    // Content-Length: neither may reach the app as a complete request.
    if ((req.body as { aborted?: boolean } | null)?.aborted === true) {
      this.fail(new MycelError('upstream-reset', 'the client aborted the request body'));
      return;
    }
    if (!this.chunked && this.bodyBytes !== req.bodyLength) {
      this.fail(new MycelError('bad-request', `the request body ended after ${this.bodyBytes} of ${req.bodyLength} bytes`));
      return;
    }
    if (this.chunked) {
      const trailers = req.requestTrailers();
      if (trailers !== null && trailers.length > 0) {
        let t = '0\r\n';
        for (let i = 0; i < trailers.length; i += 2) t += trailers[i] + ': ' + trailers[i + 1] + CRLF;
        this.socket.write(t + CRLF, 'latin1');
      } else {
        this.socket.write(LAST_CHUNK);
      }
    }
    this.requestEnded = true;
    this.detachBody();
    if (this.responseEnded) this.finishExchange();
  };

  /** The client's request body broke off: the upstream request can never be completed. */
  private readonly onBodyError = (): void => {
    if (this.requestEnded) return;
    this.fail(new MycelError('upstream-reset', 'the client aborted the request body'));
  };

  private detachBody(): void {
    const body: Readable | null | undefined = this.req?.body;
    if (!body) return;
    body.off('data', this.onBodyData);
    body.off('end', this.onBodyEnd);
    body.off('error', this.onBodyError);
    body.off('aborted', this.onBodyError);
  }

  // ---- socket ------------------------------------------------------------------------------------------------------

  private readonly onConnect = (): void => {
    this.connected = true;
    this.owner.connected(this);
    this.sink?.onConnected?.();
    this.socket.setTimeout(this.req ? this.owner.idleTimeoutMs : 0);
  };

  private readonly onData = (chunk: Buffer): void => {
    if (this.req === null) {
      // Bytes on an idle connection: the server is confused; never let them prefix the next response.
      this.destroy();
      return;
    }
    try {
      const used = this.parser.execute(chunk);
      if (used < chunk.length) throw new H1ParseError('bytes after the end of the response');
    } catch (err) {
      this.fail(err instanceof H1ParseError ? new MycelError('upstream-protocol-error', err.message) : toMycelError(err));
    }
  };

  private readonly onSocketEnd = (): void => {
    if (this.req !== null && this.parser.readsUntilClose) {
      try {
        this.parser.finish();
      } catch {
        /* finish() of a close-delimited body cannot fail */
      }
    }
    this.keepAlive = false;
    if (this.req === null) this.destroy();
  };

  private readonly onError = (err: Error): void => {
    const e = classifySocketError(err, this.connected);
    this.fail(e.code === 'upstream-reset' && this.refusedAfterHandshake() ? refusedError() : e);
  };

  /** A TLS 1.3 server that refuses our certificate closes (or resets) right after the handshake, without an alert. */
  private refusedAfterHandshake(): boolean {
    return this.connected && this.served === 0 && !this.responseStarted && this.socket.bytesRead === 0 && 'encrypted' in this.socket;
  }

  private readonly onClose = (): void => {
    this.closed = true;
    this.owner.forget(this);
    if (this.req === null) return;
    if (!this.connected) {
      this.fail(new MycelError('connect-failed', 'connection closed during connect'));
    } else if (this.refusedAfterHandshake()) {
      this.fail(refusedError());
    } else {
      this.fail(new MycelError('upstream-reset', 'connection closed before the response was complete'));
    }
  };

  private readonly onTimeout = (): void => {
    if (!this.connected) this.fail(new MycelError('connect-timeout', `no connection within ${this.owner.connectTimeoutMs} ms`));
    else if (this.req !== null) this.fail(new MycelError('idle-timeout', `no bytes from upstream for ${this.owner.idleTimeoutMs} ms`));
    else this.destroy(); // idle in the pool too long
  };

  // ---- parser events -----------------------------------------------------------------------------------------------

  onInformational(status: number, headers: HeaderList): void {
    this.sink?.onInformational(status, headers);
  }

  onHead(head: ResponseHead): void {
    this.responseStarted = true;
    this.keepAlive = head.keepAlive;
    this.sink?.onResponseHead(head.status, head.headers);
  }

  onBody(chunk: Buffer): void {
    if (this.sink !== null && !this.sink.onResponseData(chunk)) this.socket.pause();
  }

  onEnd(trailers: HeaderList | null): void {
    this.responseEnded = true;
    const sink = this.sink;
    this.sink = null;
    sink?.onResponseEnd(trailers);
    // A response that ends before the request body was sent (e.g. 413, or a final status instead of 100 Continue)
    // leaves the connection unusable: the server would read our remaining body as a new request.
    if (this.requestEnded) this.finishExchange();
    else this.destroy();
  }

  private finishExchange(): void {
    this.req = null;
    this.call = null;
    this.served++;
    if (this.keepAlive && !this.closed) {
      this.socket.setTimeout(this.owner.poolIdleMs);
      this.owner.release(this);
    } else {
      this.destroy();
    }
  }

  private fail(err: MycelError): void {
    const req = this.req;
    const sink = this.sink;
    const call = this.call;
    this.req = null;
    this.sink = null;
    this.call = null;
    this.destroy();
    if (req === null || sink === null || call === null || call.aborted) return;
    // A pooled connection the server closed while idle: the request never reached the app, so send it again once.
    if (this.served > 0 && !this.responseStarted && req.body === null && (err.code === 'upstream-reset' || err.code === 'connect-failed')) {
      this.owner.replay(req, sink, call);
      return;
    }
    sink.onResponseError(err);
  }
}

function refusedError(): MycelError {
  return new MycelError('tls-handshake-failed', 'the peer closed the connection right after the TLS handshake without a byte: it most likely refused our client certificate (untrusted CA or expired)', { retryable: true });
}

function hasField(h: HeaderList, name: string): boolean {
  for (let i = 0; i < h.length; i += 2) if (h[i] === name) return true;
  return false;
}

function classifySocketError(err: Error, connected: boolean): MycelError {
  if (err instanceof MycelError) return err;
  const e = toMycelError(err, connected ? 'upstream-reset' : 'connect-failed');
  if (!connected && e.code === 'upstream-reset') return new MycelError('connect-failed', err.message, { cause: err });
  return e;
}
