// An HTTP/2 client for one endpoint: a single multiplexed session (mTLS to a peer sidecar, or h2c to a local app),
// replaced when it closes or is told to go away; each request is one stream.

import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import { MycelError, toMycelError } from '../../../core/errors.js';
import type { HttpClient, ResponseSink, UpstreamCall, UpstreamRequest } from '../../stack/http-types.js';
import { h2ToList, listIntoH2 } from './headers.js';
import { connectionRefused, type ConnectionSlots } from '../connection-slots.js';
import { SessionKeepalive, type KeepaliveSettings } from './keepalive.js';

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;

export interface H2ClientOptions {
  /** The URL Node's http2.connect wants for :scheme and default :authority, e.g. https://10.0.0.1:15006 or http://127.0.0.1:8080 */
  url: string;
  /** Opens the transport socket (a TLS socket with ALPN h2 to a peer, or a plain TCP socket for h2c). */
  createConnection?: () => Socket;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  /** HTTP/2 settings we announce; the peer's limits apply to what we send. */
  settings?: http2.Settings;
  /** The destination's connection and pending-request limits (shared with its other endpoints' clients). */
  slots?: ConnectionSlots;
  /**
   * Keepalive (keepalive.ts): a PING every `intervalMs` on an open session. When neither its answer nor any other
   * byte arrives within `timeoutMs`, the session takes no new requests and its streams finish on their own deadlines;
   * silent for DEAD_AFTER_TIMEOUTS more, it is destroyed. Without it a peer behind a silent partition keeps the
   * session (and every request put on it) hanging until TCP gives up, many minutes later. Read when a session opens
   * (so a config change applies to new sessions). Absent: no pings.
   */
  keepalive?: () => KeepaliveSettings;
  /** Told when a session in service is closed to new requests for want of a PING answer (for a log line). */
  onKeepaliveTimeout?: (url: string, timeoutMs: number) => void;
}

const kCall = Symbol('mycel.h2call');
type StreamWithCall = ClientHttp2Stream & { [kCall]?: H2Call };

/** What is known of a session: a peer that closes before its first SETTINGS frame did not accept us. */
interface SessionState {
  secure: boolean;
  peerSpoke: boolean;
  /** Requests holding a pending slot while the session connects. */
  pending: number;
}

/** One request on a stream; event handlers are shared functions that find the call through the stream. */
class H2Call implements UpstreamCall {
  done = false;
  bodyBytes = 0;
  constructor(
    readonly stream: StreamWithCall,
    readonly sink: ResponseSink,
    readonly req: UpstreamRequest,
    readonly session: SessionState,
  ) {}

  resume(): void {
    if (!this.done) this.stream.resume();
  }

  abort(): void {
    if (this.done) return;
    this.done = true;
    detachBody(this);
    resetStream(this.stream, NGHTTP2_CANCEL);
  }
}

export class H2Client implements HttpClient {
  private session: ClientHttp2Session | null = null;
  private state: SessionState = { secure: false, peerSpoke: false, pending: 0 };

  constructor(private readonly options: H2ClientOptions) {}

  request(req: UpstreamRequest, sink: ResponseSink): UpstreamCall {
    const session = this.currentSession();
    if (session instanceof MycelError) return this.failedCall(req, sink, session);
    const slots = this.options.slots;
    const connecting = session.connecting;
    if (slots !== undefined && connecting) {
      // Until the session is up, its requests wait: each holds a pending slot.
      const why = slots.pending.tryAcquire();
      if (why !== null) return this.failedCall(req, sink, connectionRefused(why, slots.pending));
      this.state.pending++;
    }
    const headers: OutgoingHttpHeaders = {
      ':method': req.method,
      ':path': req.path,
      ':authority': req.authority,
      ':scheme': 'http',
    };
    listIntoH2(req.headers, headers);
    const endStream = req.body === null;
    // A request that announces trailers (Trailer field) gets them sent after its body.
    const waitForTrailers = !endStream && headers.trailer !== undefined;
    let stream: StreamWithCall;
    try {
      stream = session.request(headers, { endStream, waitForTrailers });
    } catch (err) {
      // The session died between the check and the call (or ran out of stream ids): report, and start over next time.
      this.dropSession(session);
      return this.failedCall(req, sink, toMycelError(err, 'upstream-reset'));
    }
    const call = new H2Call(stream, sink, req, this.state);
    stream[kCall] = call;
    stream.on('response', onResponse);
    stream.on('headers', onInformational);
    // 'data' is attached only once 'response' has been emitted: Node emits 'response' on the next tick, and DATA
    // that arrived in the same read as the HEADERS would otherwise overtake it.
    stream.on('trailers', onTrailers);
    stream.on('end', onEnd);
    stream.on('error', onStreamError);
    stream.on('close', onStreamClose);
    if (waitForTrailers) stream.on('wantTrailers', onWantTrailers);
    stream.setTimeout(this.options.idleTimeoutMs, onStreamTimeout);
    if (connecting) stream.once('ready', onStreamReady);
    if (req.body !== null) {
      const body = req.body;
      (body as unknown as { [kCall]?: H2Call })[kCall] = call;
      body.on('error', onBodyAborted);
      body.on('aborted', onBodyAborted);
      body.on('data', onBodyData);
      body.on('end', onBodyEnd);
      // Not `end: true`: a body that stopped short must reset the stream, never end it as if complete.
      body.pipe(stream, { end: false });
    }
    return call;
  }

  close(): void {
    const s = this.session;
    this.session = null;
    if (s && !s.destroyed) s.close(); // GOAWAY; open streams finish first
  }

  /** A call that failed before it had a stream; the error is reported on the next tick, as a stream's would be. */
  private failedCall(req: UpstreamRequest, sink: ResponseSink, err: MycelError): H2Call {
    const call = new H2Call(null as unknown as StreamWithCall, sink, req, this.state);
    call.done = true;
    queueMicrotask(() => sink.onResponseError(err));
    return call;
  }

  private currentSession(): ClientHttp2Session | MycelError {
    const s = this.session;
    if (s !== null && !s.destroyed && !s.closed && !(s as { goawayReceived?: boolean }).goawayReceived) return s;
    const slots = this.options.slots;
    const why = slots?.connections.tryAcquire() ?? null;
    if (why !== null) return connectionRefused(why, slots!.connections);
    return this.openSession();
  }

  private openSession(): ClientHttp2Session {
    const opts: http2.ClientSessionOptions = { settings: { enablePush: false, ...this.options.settings } };
    if (this.options.createConnection) {
      const create = this.options.createConnection;
      opts.createConnection = () => create();
    }
    const session = http2.connect(this.options.url, opts);
    this.session = session;
    const state: SessionState = { secure: this.options.url.startsWith('https:'), peerSpoke: false, pending: 0 };
    this.state = state;
    session.once('remoteSettings', () => (state.peerSpoke = true));
    session.on('error', () => {
      /* stream errors carry the detail; the session is replaced on close */
    });
    session.on('goaway', () => {
      (session as { goawayReceived?: boolean }).goawayReceived = true;
      if (this.session === session) this.session = null;
    });
    const slots = this.options.slots;
    if (slots !== undefined) {
      const releasePending = () => {
        for (; state.pending > 0; state.pending--) slots.pending.release();
      };
      session.once('connect', releasePending);
      session.once('close', () => {
        releasePending();
        slots.connections.release();
      });
    }
    session.on('close', () => {
      if (this.session === session) this.session = null;
    });
    session.setTimeout(this.options.connectTimeoutMs, () => {
      if (!session.connecting) session.setTimeout(0);
      else session.destroy(new MycelError('connect-timeout', `no connection within ${this.options.connectTimeoutMs} ms`));
    });
    session.once('connect', () => session.setTimeout(0));
    if (this.options.keepalive !== undefined) session.once('connect', (_s: ClientHttp2Session, socket: Socket) => this.startKeepalive(session, socket));
    // Keep the process from staying alive for an idle pool only.
    session.unref();
    return session;
  }

  /** One watcher per session (not per request), from its connect to its socket's close. */
  private startKeepalive(session: ClientHttp2Session, socket: Socket): void {
    new SessionKeepalive(session, socket, this.options.keepalive!(), (k) => this.suspect(k));
  }

  /**
   * A PING went unanswered and nothing else arrived: the peer may be gone, or the link stalled on retransmits. The
   * session takes no new streams (the next request opens a new one) and is told to go away; its streams are left to
   * finish on their own deadlines (per-try and request timeouts answer with a mesh error, retries go to the new
   * session), and the keepalive destroys it if it stays silent.
   */
  private suspect(k: SessionKeepalive): void {
    const session = k.session;
    if (this.session === session) this.session = null;
    if (session.closed || session.destroyed) return; // already on its way out
    this.options.onKeepaliveTimeout?.(this.options.url, k.settings.timeoutMs);
    session.close(); // GOAWAY; destroyed once its last stream ends
  }

  private dropSession(session: ClientHttp2Session): void {
    if (this.session === session) this.session = null;
    if (!session.destroyed) session.destroy();
  }
}

function callOf(stream: ClientHttp2Stream): H2Call | undefined {
  return (stream as StreamWithCall)[kCall];
}

function onResponse(this: ClientHttp2Stream, headers: IncomingHttpHeaders): void {
  const call = callOf(this);
  if (!call || call.done) return;
  call.sink.onResponseHead(Number(headers[':status']), h2ToList(headers));
  this.on('data', onData);
}

function onStreamReady(this: ClientHttp2Stream): void {
  const call = callOf(this);
  if (call !== undefined && !call.done) call.sink.onConnected?.();
}

function onInformational(this: ClientHttp2Stream, headers: IncomingHttpHeaders): void {
  const call = callOf(this);
  const status = Number(headers[':status']);
  if (!call || call.done || !(status >= 100 && status < 200)) return;
  call.sink.onInformational(status, h2ToList(headers));
}

function onData(this: ClientHttp2Stream, chunk: Buffer): void {
  const call = callOf(this);
  if (!call || call.done) return;
  if (!call.sink.onResponseData(chunk)) this.pause();
}

function onWantTrailers(this: ClientHttp2Stream): void {
  const call = callOf(this);
  const t = call?.req.requestTrailers() ?? null;
  this.sendTrailers(t === null ? {} : listIntoH2(t, {}));
}

function onTrailers(this: ClientHttp2Stream, trailers: IncomingHttpHeaders): void {
  const call = callOf(this);
  if (call) (call as H2Call & { trailers?: IncomingHttpHeaders }).trailers = trailers;
}

function onEnd(this: ClientHttp2Stream): void {
  const call = callOf(this);
  if (!call || call.done) return;
  call.done = true;
  // The response is complete. A request body still streaming (the app answered early) keeps flowing to its end
  // and the far side drops it (it ends its response only then, see server-stream.ts); a reset instead would leave
  // the far side with late frames on a closed stream, which nghttp2 counts until it drops the whole session.
  if (this.writableEnded) detachBody(call);
  const t = (call as H2Call & { trailers?: IncomingHttpHeaders }).trailers;
  call.sink.onResponseEnd(t ? h2ToList(t) : null);
}

function onStreamError(this: ClientHttp2Stream, err: Error): void {
  failCall(this, this.rstCode === NGHTTP2_REFUSED_STREAM ? refusedStream() : toMycelError(err, 'upstream-reset'));
}

/** REFUSED_STREAM (also what nghttp2 reports for streams above a GOAWAY's last stream id): nothing was processed. */
function refusedStream(): MycelError {
  return new MycelError('upstream-reset', 'stream refused by upstream (HTTP/2 REFUSED_STREAM): the request was not processed', { unprocessed: true });
}

function onStreamClose(this: ClientHttp2Stream): void {
  const call = callOf(this);
  if (!call || call.done) return;
  // Closed without 'end' or 'error': a reset by the peer (REFUSED_STREAM is safe to retry: nothing was processed).
  const code = this.rstCode;
  failCall(this, code === NGHTTP2_REFUSED_STREAM ? refusedStream() : new MycelError('upstream-reset', `stream reset by upstream (HTTP/2 error code ${code})`, { retryable: false }));
}

function onStreamTimeout(this: ClientHttp2Stream): void {
  const call = callOf(this);
  if (!call || call.done) return;
  failCall(this, new MycelError('idle-timeout', 'no bytes from upstream within the idle timeout'));
  resetStream(this, NGHTTP2_CANCEL);
}

function failCall(stream: ClientHttp2Stream, err: MycelError, fromPeer = true): void {
  const call = callOf(stream);
  if (!call || call.done) return;
  call.done = true;
  if (fromPeer && err.code === 'upstream-reset' && call.session.secure && !call.session.peerSpoke) {
    // A TLS 1.3 server that refuses our certificate closes right after the handshake, before its SETTINGS frame.
    err = new MycelError('tls-handshake-failed', 'the peer closed the connection right after the TLS handshake, before its HTTP/2 SETTINGS: it most likely refused our client certificate (untrusted CA or expired)', { retryable: true });
  }
  detachBody(call);
  call.sink.onResponseError(err);
}

function onBodyAborted(this: { [kCall]?: H2Call }): void {
  const call = this[kCall];
  if (!call) return;
  if (!call.done) failCall(call.stream, new MycelError('upstream-reset', 'the client aborted the request body'), false);
  detachBody(call);
  resetStream(call.stream, NGHTTP2_CANCEL);
}

function onBodyData(this: { [kCall]?: H2Call }, chunk: Buffer): void {
  const call = this[kCall];
  if (call) {
    call.bodyBytes += chunk.length;
    call.req.countBody(chunk.length);
  }
}

/** The client's body ended: end the stream only if it is whole (not aborted, and as long as Content-Length said). */
function onBodyEnd(this: { [kCall]?: H2Call; aborted?: boolean }): void {
  const call = this[kCall];
  if (!call) return;
  const expected = call.req.bodyLength;
  if (this.aborted === true || (expected >= 0 && call.bodyBytes !== expected)) {
    if (!call.done) failCall(call.stream, new MycelError('bad-request', `the request body ended after ${call.bodyBytes} of ${expected} bytes`), false);
    detachBody(call);
    resetStream(call.stream, NGHTTP2_CANCEL);
    return;
  }
  if (!call.stream.destroyed) call.stream.end();
}

/**
 * Resets a stream without first ending it. Node's close() half-closes the stream (an empty DATA frame with
 * END_STREAM) before sending RST_STREAM, so the peer would take a cut-off request body as complete.
 */
function resetStream(stream: ClientHttp2Stream, code: number): void {
  if (stream.destroyed || stream.closed) return;
  const ws = (stream as unknown as { _writableState?: { ending: boolean } })._writableState;
  if (ws !== undefined) ws.ending = true;
  stream.close(code);
}

function detachBody(call: H2Call): void {
  const body = call.req.body;
  if (body === null) return;
  body.off('error', onBodyAborted);
  body.off('aborted', onBodyAborted);
  body.off('data', onBodyData);
  body.off('end', onBodyEnd);
  body.unpipe(call.stream);
}
