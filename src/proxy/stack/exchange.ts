// One request passing through the proxy: the request as it will be forwarded, what the layers decided about it,
// and the sink that streams the response (or the error) back to the client through a protocol-specific Downstream.

import { performance } from 'node:perf_hooks';
import type { ErrorCode } from '../../core/error-catalogue.js';
import type { MycelError } from '../../core/errors.js';
import type { SpanContext } from '../../core/trace-context.js';
import { HOP_BY_HOP, type HeaderList, type ResponseSink, type UpstreamCall, type UpstreamRequest } from './http-types.js';
import type { Readable } from 'node:stream';
import type { BackendTarget, EndpointTarget, PortTarget, ServiceTarget } from '../config/targets.js';
import type { CompiledRule, RouteBackend } from '../config/route-table.js';
import type { HeaderModifier } from './header-modifier.js';

export type Direction = 'outbound' | 'inbound';
export type HttpProtocol = 'http/1.1' | 'h2';

/** The client side of an exchange: writes a response in the client's protocol. */
export interface Downstream {
  readonly protocol: HttpProtocol;
  readonly headersSent: boolean;
  writeInformational(status: number, headers: HeaderList): void;
  writeHead(status: number, headers: HeaderList, ex: HttpExchange): void;
  /** Returns false when full; the downstream calls ex.onDownstreamDrain() later. */
  write(chunk: Buffer): boolean;
  end(trailers: HeaderList | null): void;
  /** The response cannot be completed: reset the stream or drop the connection. */
  abort(): void;
  /** Trailer fields of the request body, once it has ended. */
  requestTrailers(): HeaderList | null;
}

/** One try of a request made by the retry layer (the "retries and why" of the decision record). */
export interface AttemptRecord {
  /** address:port the try went to; null when none was chosen. */
  readonly endpoint: string | null;
  /** HTTP status of its answer; 0 when it got none. */
  readonly status: number;
  /**
   * What went wrong, if anything: a failure class (connect-failure, refused-stream, reset, timeout), an HTTP status
   * ("503") or a gRPC status class ("unavailable"); null for an answer that was not a failure.
   */
  readonly reason: string | null;
  /**
   * What the retry layer did next: 'retry', or why not (a RetryVerdict, 'budget-exhausted', 'max-retries'),
   * 'answered' (no failure), 'abandoned' (the request ended meanwhile: client gone, request timeout).
   */
  readonly verdict: string;
}

/** One attempt the balancer sent (the decision record tap shows): where it went, from which set, and how it ended. */
export interface EndpointAttempt {
  /** address:port of the endpoint. */
  readonly endpoint: string;
  /** The set it was picked from: 'healthy' endpoints, 'local' (the caller's zone), or 'panic' (health ignored). */
  readonly mode: string;
  /** Response status; 0 when none came. */
  readonly status: number;
  /** The error code that ended it, if one did. */
  readonly error: string | null;
  /** Its failure made outlier detection eject the endpoint. */
  readonly ejected: boolean;
}

/** Receives every finished exchange (success or failure); set by the sidecar assembly. */
export type ExchangeObserver = (ex: HttpExchange) => void;

/** Called by the one error responder; lives in error-response.ts, registered there to avoid an import cycle. */
export type ErrorResponder = (ex: HttpExchange, err: MycelError) => void;

export class HttpExchange implements UpstreamRequest, ResponseSink {
  // The request as it will be forwarded.
  authority: string;
  path: string;
  headers: HeaderList;
  readonly method: string;
  /** Replaced only when a mirror tees the body into two streams. */
  body: Readable | null;
  readonly bodyLength: number;
  /** gRPC request (content-type application/grpc...): errors become grpc-status, not HTTP statuses. */
  readonly grpc: boolean;
  readonly startTime = performance.now();

  // What the layers found out.
  service: ServiceTarget | null = null;
  port: PortTarget | null = null;
  target: EndpointTarget | null = null;
  /** The client spoke HTTP/1.1 to the outbound sidecar (carried across an HTTP/2 hop as mycel-orig-proto). */
  originalProtocol: HttpProtocol;
  /** Name of the destination service (outbound) or of the local service (inbound). */
  destination: string | null = null;
  /** Caller's service, when known (the sidecar's own service outbound; the peer identity's service inbound). */
  source: string | null = null;
  /** SPIFFE ID of the mTLS peer (inbound) or of the destination (outbound). */
  peerIdentity: string | null = null;
  /** address:port of the endpoint the request was sent to. */
  endpoint: string | null = null;

  // What the route stage decided (outbound, when the destination has routes).
  /** "namespace/name" of the route whose rule matched: the `route` label of the metrics. */
  route: string | null = null;
  routeRule = -1;
  /** The service or subset the request was sent to. */
  backend: BackendTarget | null = null;
  /** The rule and backend being applied, and the next filter step (a delay resumes there). */
  routeState: { rule: CompiledRule; backend: RouteBackend | null; step: number } | null = null;
  /** ResponseHeaderModifiers of the rule and backend, applied to the response head. */
  responseModifiers: readonly HeaderModifier[] | null = null;
  /** When the response must be complete (performance.now() ms): route or TrafficPolicy timeout, or gRPC deadline; 0: none. */
  deadline = 0;
  /** The tries the retry layer made, in order; null when the destination has no retry policy. */
  attempts: AttemptRecord[] | null = null;
  /** Attempts sent by the balancer, in order (null until the first). */
  tried: EndpointAttempt[] | null = null;
  /** A session-affinity cookie value the balancer made up for a client that had none (set on the response). */
  affinityCookie: string | null = null;
  /** This hop's span (trace id for tap and logs); null while tracing is off. */
  trace: SpanContext | null = null;
  /** Address of the client connection (outbound: the local app), for source-address hashing. */
  clientAddress: string | null = null;
  /** Timers that end with the exchange (route timeouts, fault delays). */
  private timers: NodeJS.Timeout[] | null = null;

  // Outcome.
  upstream: UpstreamCall | null = null;
  /**
   * What the endpoint layer sends and where the answer goes, for the attempt being made: the exchange itself unless a
   * layer interposes. The retry layer puts an attempt here (a replayable body, a sink that holds back a response it
   * may retry); the balancer wraps the sink to learn each attempt's outcome (latency, status) for its endpoint.
   */
  attemptRequest: UpstreamRequest;
  attemptSink: ResponseSink;
  status = 0;
  grpcStatus: string | null = null;
  errorCode: ErrorCode | 'downstream-reset' | null = null;
  errorDetail: string | null = null;
  responseBytes = 0;
  /** Request body bytes sent upstream (the most any one attempt sent, so retries do not count twice). */
  requestBytes = 0;
  finished = false;
  endTime = 0;

  constructor(
    readonly direction: Direction,
    readonly downstream: Downstream,
    method: string,
    authority: string,
    path: string,
    headers: HeaderList,
    body: Readable | null,
    bodyLength: number,
    grpc: boolean,
    private readonly observer: ExchangeObserver,
    private readonly respondError: ErrorResponder,
  ) {
    this.method = method;
    this.authority = authority;
    this.path = path;
    this.headers = headers;
    this.body = body;
    this.bodyLength = bodyLength;
    this.grpc = grpc;
    this.originalProtocol = downstream.protocol;
    this.attemptRequest = this;
    this.attemptSink = this;
  }

  requestTrailers(): HeaderList | null {
    return this.downstream.requestTrailers();
  }

  countBody(bytes: number): void {
    this.requestBytes += bytes;
  }

  /** Any layer that cannot go on calls this; the error becomes a response in exactly one place. */
  fail(err: MycelError): void {
    if (this.finished) return;
    this.errorCode = err.code;
    this.errorDetail = err.message;
    this.respondError(this, err);
    // Whatever the upstream side still holds for this request (a half-sent body) is abandoned.
    const up = this.upstream;
    this.upstream = null;
    up?.abort();
    this.complete();
  }

  /** A timer cleared when the exchange completes, whichever way. */
  addTimer(t: NodeJS.Timeout): void {
    (this.timers ??= []).push(t);
  }

  /** A response the proxy makes itself that is no error (a route's redirect); the upstream side is abandoned. */
  respondLocal(status: number, headers: HeaderList): void {
    if (this.finished) return;
    const up = this.upstream;
    this.upstream = null;
    up?.abort();
    this.status = status;
    if (!this.downstream.headersSent) this.downstream.writeHead(status, headers, this);
    this.downstream.end(null);
    this.complete();
  }

  // ---- ResponseSink: the upstream's response flows to the client ----------------------------------------------------

  onInformational(status: number, headers: HeaderList): void {
    if (!this.finished) this.downstream.writeInformational(status, headers);
  }

  onResponseHead(status: number, headers: HeaderList): void {
    if (this.finished) return;
    this.status = status;
    let clean = stripHopByHop(headers);
    const mods = this.responseModifiers;
    if (mods !== null) for (let i = 0; i < mods.length; i++) clean = (mods[i] as HeaderModifier).apply(clean);
    if (this.grpc) this.grpcStatus = fieldValue(clean, 'grpc-status');
    this.downstream.writeHead(status, clean, this);
  }

  onResponseData(chunk: Buffer): boolean {
    this.responseBytes += chunk.length;
    return this.finished ? true : this.downstream.write(chunk);
  }

  onResponseEnd(trailers: HeaderList | null): void {
    if (this.finished) return;
    const clean = trailers === null ? null : stripHopByHop(trailers);
    if (this.grpc && clean !== null) this.grpcStatus = fieldValue(clean, 'grpc-status') ?? this.grpcStatus;
    this.downstream.end(clean);
    this.complete();
  }

  onResponseError(err: MycelError): void {
    this.fail(err);
  }

  // ---- Downstream events ----------------------------------------------------------------------------------------

  onDownstreamDrain(): void {
    this.upstream?.resume();
  }

  /** The client went away before the response was complete: stop the upstream side too. */
  onDownstreamClosed(): void {
    if (this.finished) return;
    this.errorCode = 'downstream-reset';
    this.upstream?.abort();
    this.complete();
  }

  private complete(): void {
    if (this.finished) return;
    this.finished = true;
    this.endTime = performance.now();
    const timers = this.timers;
    if (timers !== null) for (let i = 0; i < timers.length; i++) clearTimeout(timers[i]);
    this.observer(this);
  }
}

/** Drops hop-by-hop fields and any field the Connection header names (RFC 9110 section 7.6.1). */
export function stripHopByHop(headers: HeaderList): HeaderList {
  let named: string[] | null = null;
  let needCopy = false;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    if (HOP_BY_HOP.has(name) || name === 'te') {
      needCopy = true;
      if (name === 'connection') {
        for (const tok of (headers[i + 1] as string).split(',')) {
          const t = tok.trim().toLowerCase();
          if (t) (named ??= []).push(t);
        }
      }
    }
  }
  if (!needCopy) return headers;
  const out: HeaderList = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    if (HOP_BY_HOP.has(name) || (named !== null && named.includes(name))) continue;
    if (name === 'te' && (headers[i + 1] as string).trim().toLowerCase() !== 'trailers') continue;
    out.push(name, headers[i + 1] as string);
  }
  return out;
}

export function fieldValue(headers: HeaderList, name: string): string | null {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) return headers[i + 1] as string;
  return null;
}
