// The server side of a listener: one HTTP/1.1 and one HTTP/2 server (never listening themselves; sockets are handed
// to them after detection or ALPN), with the limits that keep hostile clients bounded, and edge validation that turns
// each request into an HttpExchange for the listener's stack.

import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import http2, { type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { ErrorCode } from '../../core/error-catalogue.js';
import { ERROR_CATALOGUE } from '../../core/error-catalogue.js';
import { MycelError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { MeshSettings } from '../config/plan.js';
import { HttpExchange, type Direction, type Downstream, type ErrorResponder, type ExchangeObserver } from '../stack/exchange.js';
import { ERROR_HEADER } from '../stack/error-response.js';
import type { HeaderList } from '../stack/http-types.js';
import type { HttpService } from '../stack/service.js';
import { exchangeOfResponse, H1Downstream, requestHeaderList } from './h1/server-response.js';
import { h2ToList } from './h2/headers.js';
import { H2Downstream } from './h2/server-stream.js';

const { NGHTTP2_FLAG_END_STREAM, NGHTTP2_REFUSED_STREAM } = http2.constants;

/**
 * Per client connection: pipelined HTTP/1.1 requests wait here until the one before has been answered, so that a
 * client pipelining thousands of requests gets them served one by one rather than opening thousands of upstream
 * connections. Past MAX_PIPELINED the socket is paused until the queue drains.
 */
const kPipeline = Symbol('mycel.pipeline');
/** Set on a client connection once the proxy refused a request on it: it closes after that answer, nothing more. */
const kRefused = Symbol('mycel.refused');
const MAX_PIPELINED = 16;
interface Pipeline {
  active: HttpExchange | null;
  waiting: HttpExchange[];
}
type PipelinedSocket = Socket & { [kPipeline]?: Pipeline; [kRefused]?: boolean };

/** The client side of a request already answered on its raw socket (refuseRaw): nothing more goes to it. */
const ANSWERED_RAW: Downstream = {
  protocol: 'http/1.1',
  headersSent: true,
  writeInformational() {},
  writeHead() {},
  write: () => true,
  end() {},
  abort() {},
  requestTrailers: () => null,
};

export interface FrontendHooks {
  /** The stack every request goes through. */
  service: HttpService;
  observer: ExchangeObserver;
  respondError: ErrorResponder;
  /** CONNECT (HTTP/1.1 forward proxy tunnels); absent: 405-like refusal. */
  onConnect?(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Upgrade requests (WebSocket). */
  onUpgrade?(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Sets per-exchange facts known from the connection (e.g. the mTLS peer identity). */
  decorate?(ex: HttpExchange, socket: Socket): void;
}

export class HttpFrontend {
  readonly h1: http.Server;
  readonly h2: http2.Http2Server;
  private draining = false;
  private readonly sessions = new Set<Http2Session>();
  /** Exchanges and tunnels in flight; drain waits for zero. */
  inFlight = 0;

  constructor(
    readonly direction: Direction,
    private settings: MeshSettings,
    private readonly hooks: FrontendHooks,
    private readonly log: Logger,
  ) {
    const lim = settings.limits;
    const t = settings.timeouts;
    this.h1 = http.createServer({
      maxHeaderSize: lim.maxHeaderBytes,
      headersTimeout: t.requestHeadersMs,
      requestTimeout: 0, // long uploads are fine; a stalled one is cut by the idle timeout below
      keepAliveTimeout: t.clientIdleMs,
      connectionsCheckingInterval: Math.min(1000, t.requestHeadersMs),
      insecureHTTPParser: false,
      requireHostHeader: false, // absent Host is answered by our own validation, with a reason
      noDelay: true,
    });
    // Node stops reading fields past maxHeadersCount silently; one more than the limit lets us see the excess.
    this.h1.maxHeadersCount = lim.maxHeaderCount + 1;
    // No socket inactivity timeout here: a client waiting for a slow upstream is quiet on purpose. Stalls are cut by
    // headersTimeout (head), keepAliveTimeout (between requests) and the upstream idle timeout (during an exchange).
    this.h1.timeout = 0;
    this.h1.on('request', this.onH1Request);
    this.h1.on('checkContinue', this.onH1Request);
    this.h1.on('checkExpectation', this.onH1Request);
    this.h1.on('clientError', this.onClientError);
    this.h1.on('connect', this.onConnectRequest);
    this.h1.on('upgrade', this.onUpgradeRequest);
    // Node arms the check behind headersTimeout (slowloris) on 'listening'; these servers never listen themselves.
    this.h1.emit('listening');

    this.h2 = http2.createServer({
      maxHeaderListPairs: lim.maxHeaderCount + 8,
      maxSessionMemory: 16,
      maxSessionInvalidFrames: 100,
      maxSessionRejectedStreams: 100,
      maxOutstandingPings: 10,
      maxSettings: 32,
      settings: {
        maxConcurrentStreams: lim.maxConcurrentStreams,
        maxHeaderListSize: lim.maxHeaderBytes,
        enablePush: false,
      },
    });
    this.h2.on('session', this.onH2Session);
    this.h2.on('stream', this.onH2Stream);
    this.h2.on('sessionError', () => {
      /* the session is torn down; nothing to add */
    });
  }

  updateSettings(settings: MeshSettings): void {
    this.settings = settings;
  }

  /** Detection paused the socket and put its first bytes back; the HTTP/1 server reads them once it flows again. */
  acceptH1(socket: Socket): void {
    this.h1.emit('connection', socket);
    socket.resume();
  }

  /** The HTTP/2 session reads bytes already buffered on the socket itself; resuming here would deliver them twice. */
  acceptH2(socket: Socket): void {
    this.h2.emit('connection', socket);
  }

  /** Stop taking new requests: idle keep-alive connections close, HTTP/2 sessions get GOAWAY. */
  drain(): void {
    this.draining = true;
    this.h1.closeIdleConnections();
    for (const s of this.sessions) if (!s.closed) s.close();
  }

  /** Close every connection now (end of the drain timeout). */
  destroyAll(): void {
    this.h1.closeAllConnections();
    for (const s of this.sessions) s.destroy();
  }

  get isDraining(): boolean {
    return this.draining;
  }

  private readonly closeAfter = (): boolean => this.draining;

  private readonly trackedObserver: ExchangeObserver = (ex) => {
    this.inFlight--;
    this.hooks.observer(ex);
    if (ex.downstream instanceof H1Downstream) this.nextPipelined(ex.downstream.req.socket as PipelinedSocket, ex);
  };

  /** Starts an HTTP/1.1 exchange now, or queues it behind the one in progress on the same connection. */
  private startH1(ex: HttpExchange, socket: PipelinedSocket): void {
    let p = socket[kPipeline];
    if (p === undefined) {
      p = { active: null, waiting: [] };
      socket[kPipeline] = p;
    }
    if (p.active === null) {
      p.active = ex;
      this.hooks.service.call(ex);
      return;
    }
    p.waiting.push(ex);
    if (p.waiting.length >= MAX_PIPELINED) socket.pause();
  }

  private nextPipelined(socket: PipelinedSocket, done: HttpExchange): void {
    const p = socket[kPipeline];
    if (p === undefined) return;
    if (p.active !== done) {
      // A queued request ended before its turn (its client went away).
      const i = p.waiting.indexOf(done);
      if (i !== -1) p.waiting.splice(i, 1);
      return;
    }
    let next = p.waiting.shift();
    while (next !== undefined && next.finished) next = p.waiting.shift();
    p.active = next ?? null;
    if (next === undefined) return;
    if (p.waiting.length < MAX_PIPELINED / 2 && socket.isPaused()) socket.resume();
    this.hooks.service.call(next);
  }

  // ---- HTTP/1.1 ---------------------------------------------------------------------------------------------------

  private readonly onH1Request = (req: IncomingMessage, res: ServerResponse): void => {
    const ds = new H1Downstream(req, res, this.closeAfter);
    const raw = req.rawHeaders;
    const problem = validateH1(req, this.settings);
    const target = req.url ?? '/';
    let authority = req.headers.host ?? '';
    let path = target;
    if (problem === null && target.charCodeAt(0) !== 47 /* / */) {
      // absolute-form (forward proxy): http://authority/path?query
      const abs = parseAbsoluteForm(target);
      if (abs !== null) {
        authority = abs.authority;
        path = abs.path;
      }
    }
    const headers: HeaderList = requestHeaderList(raw);
    const te = req.headers['transfer-encoding'];
    const cl = req.headers['content-length'];
    const hasBody = te !== undefined || (cl !== undefined && cl !== '0');
    const bodyLength = te !== undefined ? -1 : cl !== undefined ? Number(cl) : 0;
    const ct = req.headers['content-type'];
    const grpc = ct !== undefined && ct.startsWith('application/grpc');
    const ex = new HttpExchange(this.direction, ds, req.method ?? 'GET', authority, path, headers, hasBody ? req : null, bodyLength, grpc, this.trackedObserver, this.hooks.respondError);
    this.inFlight++;
    ds.attach(ex);
    this.hooks.decorate?.(ex, req.socket);
    if (problem !== null) {
      // A malformed request: answer, close, and send nothing of it anywhere.
      res.shouldKeepAlive = false;
      (req.socket as PipelinedSocket)[kRefused] = true;
      ex.fail(problem);
      return;
    }
    if (this.draining) res.shouldKeepAlive = false;
    this.startH1(ex, req.socket as PipelinedSocket);
  };

  private readonly onClientError = (err: Error & { code?: string; bytesParsed?: number }, socket: Duplex): void => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    let code: ErrorCode = 'bad-request';
    if (err.code === 'HPE_HEADER_OVERFLOW') code = 'header-too-large';
    else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'HPE_HEADERS_TIMEOUT') code = 'request-timeout';
    this.log.info('refused a malformed request', { direction: this.direction, error: code, reason: `${err.code ?? ''} ${err.message}` });
    const detail = `${err.code ?? ''} ${err.message}`.replace(/[\r\n]+/g, ' ');
    if ((socket as PipelinedSocket)[kRefused]) {
      // This connection already got its refusal; the parser tripping over what followed needs no second answer.
      socket.destroy();
      return;
    }
    const pending = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
    const current = pending ? exchangeOfResponse(pending) : undefined;
    if (current !== undefined && !current.finished && pending && !pending.req.complete) {
      // The request being served is the broken one (bad chunked framing in its body): fail it, which answers 400
      // if nothing was sent yet, abandons what the upstream got of it, and closes the connection.
      pending.shouldKeepAlive = false;
      (socket as PipelinedSocket)[kRefused] = true;
      current.fail(new MycelError(code, detail));
      return;
    }
    // Responses go out in request order: an earlier pipelined request still being answered comes first.
    if (pending && !pending.writableFinished) {
      const answer = () => this.refuse(socket, code, detail, null);
      pending.once('finish', answer);
      pending.once('close', () => socket.destroy());
      return;
    }
    this.refuse(socket, code, detail, null);
  };

  /**
   * Answers on the raw socket (parser errors, CONNECT and upgrades this listener does not take) and reports the
   * refusal to telemetry like any finished exchange, so that its reason shows in metrics, access log and tap.
   */
  private refuse(socket: Duplex, code: ErrorCode, detail: string, req: IncomingMessage | null): void {
    refuseRaw(socket, code, detail);
    const url = req?.url ?? '';
    const ex = new HttpExchange(this.direction, ANSWERED_RAW, req?.method ?? '-', req?.headers.host ?? '', url.length > 4096 ? url.slice(0, 4096) : url, req !== null ? requestHeaderList(req.rawHeaders) : [], null, 0, false, this.hooks.observer, this.hooks.respondError);
    this.hooks.decorate?.(ex, socket as Socket);
    ex.status = ERROR_CATALOGUE[code].status;
    ex.errorCode = code;
    ex.errorDetail = detail;
    ex.finished = true;
    ex.endTime = performance.now();
    this.hooks.observer(ex);
  }

  private readonly onConnectRequest = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (this.hooks.onConnect === undefined || this.draining) {
      this.refuse(socket, this.draining ? 'draining' : 'protocol-not-supported', 'CONNECT is not accepted on this listener', req);
      return;
    }
    this.hooks.onConnect(req, socket, head);
  };

  private readonly onUpgradeRequest = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const problem = validateH1(req, this.settings);
    if (problem !== null) {
      this.refuse(socket, problem.code, problem.message, req);
      return;
    }
    if (this.hooks.onUpgrade === undefined || this.draining) {
      this.refuse(socket, this.draining ? 'draining' : 'protocol-not-supported', 'upgrade is not accepted on this listener', req);
      return;
    }
    this.hooks.onUpgrade(req, socket, head);
  };

  // ---- HTTP/2 -----------------------------------------------------------------------------------------------------

  private readonly onH2Session = (session: Http2Session): void => {
    this.sessions.add(session);
    session.setTimeout(this.settings.timeouts.clientIdleMs, () => {
      // Idle for the whole keep-alive time with no stream open: say goodbye.
      session.close();
    });
    session.on('close', () => this.sessions.delete(session));
    session.on('error', () => {
      /* counted by the session's close */
    });
    if (this.draining) session.close();
  };

  private readonly onH2Stream = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number): void => {
    stream.on('error', ignore);
    if (this.draining) {
      stream.close(NGHTTP2_REFUSED_STREAM);
      return;
    }
    const method = headers[':method'] ?? 'GET';
    const ds = new H2Downstream(stream);
    const path = headers[':path'] ?? '';
    const authority = headers[':authority'] ?? (headers.host as string | undefined) ?? '';
    const endStream = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
    const cl = headers['content-length'];
    const bodyLength = endStream ? 0 : cl !== undefined ? Number(cl) : -1;
    const ct = headers['content-type'];
    const grpc = typeof ct === 'string' && ct.startsWith('application/grpc');
    const list = h2ToList(headers);
    const ex = new HttpExchange(this.direction, ds, method, authority, path, list, endStream ? null : stream, bodyLength, grpc, this.trackedObserver, this.hooks.respondError);
    this.inFlight++;
    ds.attach(ex);
    this.hooks.decorate?.(ex, stream.session?.socket as Socket);
    const problem = validateH2(method, path, authority, list, this.settings);
    if (problem !== null) {
      ex.fail(problem);
      return;
    }
    this.hooks.service.call(ex);
  };
}

function ignore(): void {}

function validateH1(req: IncomingMessage, settings: MeshSettings): MycelError | null {
  const url = req.url ?? '';
  if (url.length > settings.limits.maxUriBytes) return new MycelError('uri-too-long', `request target of ${url.length} bytes; the limit is ${settings.limits.maxUriBytes}`);
  const raw = req.rawHeaders;
  if (raw.length / 2 > settings.limits.maxHeaderCount) return new MycelError('header-too-large', `more than ${settings.limits.maxHeaderCount} header fields`);
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i] as string;
    if (n.length === 4 && n.toLowerCase() === 'host') hosts++;
  }
  if (hosts > 1) return new MycelError('bad-request', 'more than one Host header');
  const te = req.headers['transfer-encoding'];
  if (te !== undefined) {
    if (req.httpVersionMinor === 0 && req.httpVersionMajor === 1) return new MycelError('bad-request', 'Transfer-Encoding in an HTTP/1.0 request');
    // RFC 9112 section 6.3: chunked must be the final coding; anything else leaves the body length unknowable.
    const codings = te.toLowerCase().split(',').map((c) => c.trim());
    if (codings[codings.length - 1] !== 'chunked') return new MycelError('bad-request', `Transfer-Encoding "${te.slice(0, 60)}" does not end in chunked`);
    if (codings.length > 1) return new MycelError('protocol-not-supported', `transfer coding "${te.slice(0, 60)}" is not supported; send the body chunked only`);
  }
  if (url.charCodeAt(0) !== 47) {
    if (parseAbsoluteForm(url) === null && !(req.method === 'OPTIONS' && url === '*')) return new MycelError('bad-request', 'the request target is neither a path nor an absolute http:// URI');
  }
  if (hosts === 0 && url.charCodeAt(0) === 47 && req.httpVersionMinor === 1) return new MycelError('bad-request', 'HTTP/1.1 request without a Host header');
  return null;
}

function validateH2(method: string, path: string, authority: string, headers: HeaderList, settings: MeshSettings): MycelError | null {
  if (method === 'CONNECT') return new MycelError('protocol-not-supported', 'CONNECT over HTTP/2 is not supported; use HTTP/1.1 CONNECT or an upstream binding');
  if (path.length === 0 || (path.charCodeAt(0) !== 47 && !(method === 'OPTIONS' && path === '*'))) return new MycelError('bad-request', 'invalid :path');
  if (path.length > settings.limits.maxUriBytes) return new MycelError('uri-too-long', `:path of ${path.length} bytes; the limit is ${settings.limits.maxUriBytes}`);
  if (headers.length / 2 > settings.limits.maxHeaderCount) return new MycelError('header-too-large', `more than ${settings.limits.maxHeaderCount} header fields`);
  if (authority.length === 0) return new MycelError('bad-request', 'no :authority');
  return null;
}

/** Splits an absolute-form request target (http://host:port/path?q) into authority and origin-form path. */
export function parseAbsoluteForm(target: string): { authority: string; path: string } | null {
  let rest: string;
  if (target.startsWith('http://')) rest = target.slice(7);
  else if (target.startsWith('https://')) rest = target.slice(8);
  else return null;
  let end = rest.length;
  for (let i = 0; i < rest.length; i++) {
    const c = rest.charCodeAt(i);
    if (c === 47 || c === 63 || c === 35) {
      end = i;
      break;
    }
  }
  const authority = rest.slice(0, end);
  if (authority.length === 0 || authority.includes('@')) return null;
  let path = rest.slice(end);
  if (path.length === 0 || path.charCodeAt(0) !== 47) path = '/' + path;
  const hash = path.indexOf('#');
  if (hash !== -1) path = path.slice(0, hash);
  return { authority, path };
}

/** Answers on a raw socket (CONNECT / upgrade paths, where there is no ServerResponse) and closes it. */
export function refuseRaw(socket: Duplex, code: ErrorCode, detail: string, subject?: string): void {
  const spec = ERROR_CATALOGUE[code];
  const body = `mycel: ${code}: ${detail}\n`;
  if (socket.writable) {
    socket.end(
      `HTTP/1.1 ${spec.status} ${http.STATUS_CODES[spec.status] ?? ''}\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${ERROR_HEADER}: ${subject === undefined ? code : `${code} ${subject}`}\r\n\r\n${body}`,
    );
  }
  socket.on('error', ignore);
  setTimeout(() => socket.destroy(), 1000).unref();
}
