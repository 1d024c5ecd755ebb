// Outbound retries, between the route stage and the balancer: when the destination's TrafficPolicy has a retry
// policy, a request becomes one or more attempts, each sent through the balancer (a fresh endpoint pick) with a
// replayable body. An answer the policy retries is dropped unseen; nothing is retried once the client got a byte;
// the destination's budget bounds the extra load. See docs/resilience.md.

import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { ErrorCode } from '../../core/error-catalogue.js';
import { MycelError } from '../../core/errors.js';
import type { ServiceTarget } from '../config/targets.js';
import type { CompiledRetry } from '../config/traffic-policy.js';
import type { Slots } from '../layers/breaker/index.js';
import { attemptFailureOf, headerValue, ReplayBuffer, RetryBudget, RetryPolicy, type AttemptFailure, type RetryBudgetOptions, type RetryVerdict } from '../layers/retry/index.js';
import { ERROR_HEADER } from '../stack/error-response.js';
import { fieldValue, type AttemptRecord, type HttpExchange } from '../stack/exchange.js';
import type { HeaderList, ResponseSink, UpstreamCall, UpstreamRequest } from '../stack/http-types.js';
import type { HttpLayer, HttpService } from '../stack/service.js';
import { formatGrpcTimeout, setGrpcTimeout } from './deadline.js';

/** The retry policy of one destination as the request path uses it, built once per config change. */
class DestinationRetry {
  readonly policy: RetryPolicy;
  readonly perTryMs: number;
  constructor(
    compiled: CompiledRetry,
    readonly budget: RetryBudget,
  ) {
    this.policy = new RetryPolicy(compiled.policy);
    this.perTryMs = compiled.perTryTimeoutMs ?? 0;
  }
}

/**
 * The retry state of every destination a proxy calls: one budget per destination service, kept across config
 * changes while its options stay the same (a config push must not hand a failing destination a fresh budget).
 */
export class RetryRegistry {
  private readonly budgets = new Map<string, { key: string; budget: RetryBudget }>();
  /** By the compiled options object, which lives as long as its plan: a plain lookup on the request path. */
  private readonly byCompiled = new WeakMap<CompiledRetry, DestinationRetry>();

  constructor(private readonly now?: () => number) {}

  get(service: ServiceTarget, compiled: CompiledRetry): DestinationRetry {
    return this.byCompiled.get(compiled) ?? this.create(service, compiled);
  }

  /** The budget of a destination ("namespace/name"), if it has one. */
  budget(destination: string): RetryBudget | undefined {
    return this.budgets.get(destination)?.budget;
  }

  /** Forgets the budgets of destinations no longer in the config. */
  retain(destinations: Iterable<string>): void {
    const keep = new Set(destinations);
    for (const d of this.budgets.keys()) if (!keep.has(d)) this.budgets.delete(d);
  }

  private create(service: ServiceTarget, compiled: CompiledRetry): DestinationRetry {
    const destination = `${service.namespace}/${service.name}`;
    const o: RetryBudgetOptions = compiled.budget;
    const key = `${o.retryRatio}/${o.minRetriesPerSecond}/${o.ttlMs}/${o.buckets}`;
    let entry = this.budgets.get(destination);
    if (entry === undefined || entry.key !== key) {
      entry = { key, budget: new RetryBudget(o, this.now) };
      this.budgets.set(destination, entry);
    }
    const d = new DestinationRetry(compiled, entry.budget);
    this.byCompiled.set(compiled, d);
    return d;
  }
}

// Attempt states.
/** Sent; no answer yet. */
const PENDING = 0;
/** A gRPC answer whose status comes in its trailers, held back until then (bounded in bytes and time). */
const HOLDING = 1;
/** The answer goes to the client: no retry any more. */
const COMMITTED = 2;
/** Over: answered, failed, dropped for a retry, or abandoned. */
const OVER = 3;

/** How long a held gRPC answer may keep its first message back while waiting for its trailers (a unary call sends both together). */
const HOLD_MS = 100;

/** gRPC status -> the retryOn class that names it, for the decision record and the `reason` label. */
const GRPC_CLASS: ReadonlyMap<string, string> = new Map([
  ['1', 'cancelled'],
  ['4', 'deadline-exceeded'],
  ['8', 'resource-exhausted'],
  ['13', 'internal'],
  ['14', 'unavailable'],
]);

/**
 * A peer sidecar answers for failures behind it (x-mycel-error): they are the same failures as ours (its app being
 * unreachable means the request was not processed). A draining peer refused it unprocessed, like REFUSED_STREAM.
 */
function failureOfPeerError(code: string): AttemptFailure | null {
  return code === 'draining' ? 'refused-stream' : attemptFailureOf(code as ErrorCode);
}

/** One try: the request as this attempt sends it, and the sink its answer arrives in. */
class Attempt implements UpstreamRequest, ResponseSink, AttemptRecord {
  readonly method: string;
  authority: string;
  path: string;
  headers: HeaderList;
  readonly body: Readable | null;
  readonly bodyLength: number;

  endpoint: string | null = null;
  status = 0;
  reason: string | null = null;
  verdict = 'pending';

  state = PENDING;
  /** The transport call (or whatever the layers below put in ex.upstream); open until it ends or fails. */
  call: UpstreamCall | null = null;
  callOpen = true;
  timer: NodeJS.Timeout | null = null;
  private holdTimer: NodeJS.Timeout | null = null;
  private heldHeaders: HeaderList | null = null;
  private held: Buffer[] | null = null;
  private heldBytes = 0;
  private bodySent = 0;

  constructor(
    readonly run: RetryRun,
    headers: HeaderList,
    body: Readable | null,
  ) {
    const ex = run.ex;
    this.method = ex.method;
    this.authority = ex.authority;
    this.path = ex.path;
    this.headers = headers;
    this.body = body;
    this.bodyLength = ex.bodyLength;
  }

  requestTrailers(): HeaderList | null {
    return this.run.ex.requestTrailers();
  }

  /** Each attempt sends the (replayed) body from its start: the exchange keeps the most any attempt sent. */
  countBody(bytes: number): void {
    this.bodySent += bytes;
    const ex = this.run.ex;
    if (this.bodySent > ex.requestBytes) ex.requestBytes = this.bodySent;
  }

  onInformational(status: number, headers: HeaderList): void {
    if (this.state === PENDING) this.run.ex.onInformational(status, headers);
  }

  onResponseHead(status: number, headers: HeaderList): void {
    if (this.state !== PENDING) return;
    this.status = status;
    const run = this.run;
    if (run.meshPeer) {
      const code = fieldValue(headers, ERROR_HEADER);
      const failure = code === null ? null : failureOfPeerError(code);
      if (failure !== null) {
        if (!run.retryAfterFailure(this, failure, headers)) this.commit(status, headers);
        return;
      }
    }
    if (run.ex.grpc && run.dest.policy.retriesGrpcStatus && fieldValue(headers, 'grpc-status') === null) {
      this.state = HOLDING;
      this.heldHeaders = headers;
      return;
    }
    if (!run.retryAfterResponse(this, headers, null)) this.commit(status, headers);
  }

  onResponseData(chunk: Buffer): boolean {
    if (this.state === COMMITTED) return this.run.ex.onResponseData(chunk);
    if (this.state !== HOLDING) return true;
    (this.held ??= []).push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes > this.run.dest.policy.bufferLimitBytes) return this.release();
    this.holdTimer ??= setTimeout(holdExpired, HOLD_MS, this);
    return true;
  }

  onResponseEnd(trailers: HeaderList | null): void {
    this.callOpen = false;
    if (this.state === HOLDING) {
      if (this.run.retryAfterResponse(this, this.heldHeaders as HeaderList, trailers)) return;
      this.release();
    }
    if (this.state !== COMMITTED) return;
    this.state = OVER;
    this.run.finish();
    this.run.ex.onResponseEnd(trailers);
  }

  onResponseError(err: MycelError): void {
    this.callOpen = false;
    if (this.state === COMMITTED) {
      this.state = OVER;
      this.run.finish();
      this.run.ex.onResponseError(err);
      return;
    }
    if (this.state === OVER) return;
    this.run.failed(this, err.unprocessed ? 'refused-stream' : attemptFailureOf(err.code), err);
  }

  /** The answer goes to the client from now on. */
  commit(status: number, headers: HeaderList): void {
    this.state = COMMITTED;
    if (this.verdict === 'not-retriable' && this.reason === null) this.verdict = 'answered';
    // The per-try timeout covers the wait for an answer; once it streams, the request timeout bounds the rest.
    this.clearTimers();
    this.run.replay?.release();
    this.run.ex.onResponseHead(status, headers);
  }

  /** Stops holding a gRPC answer: it goes to the client with what was held so far. */
  release(): boolean {
    this.commit(this.status, this.heldHeaders as HeaderList);
    const held = this.held;
    this.held = null;
    let ok = true;
    if (held !== null) for (let i = 0; i < held.length; i++) ok = this.run.ex.onResponseData(held[i] as Buffer);
    return ok;
  }

  /** Drops this attempt: nothing of it reaches the client, and its call is abandoned if still open. */
  discard(): void {
    this.state = OVER;
    this.held = null;
    this.clearTimers();
    if (this.callOpen) {
      this.callOpen = false;
      this.call?.abort();
    }
  }

  clearTimers(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.holdTimer !== null) {
      clearTimeout(this.holdTimer);
      this.holdTimer = null;
    }
  }
}

function perTryTimedOut(a: Attempt): void {
  a.timer = null;
  if (a.state !== PENDING && a.state !== HOLDING) return;
  const ms = a.run.perTryMs();
  a.discard();
  a.run.failed(a, 'timeout', new MycelError('response-timeout', `${a.endpoint ?? 'the endpoint'} did not answer within the per-try timeout (${ms} ms)`));
}

function holdExpired(a: Attempt): void {
  if (a.state === HOLDING) {
    // holdTimer is this timer; release() clears it.
    a.release();
  }
}

function retryNow(run: RetryRun): void {
  run.backoff = null;
  if (!run.ex.finished) run.start();
}

/** One request under a retry policy: its attempts, one after the other; ex.upstream while it runs. */
class RetryRun implements UpstreamCall {
  current: Attempt | null = null;
  retries = 0;
  backoff: NodeJS.Timeout | null = null;
  /** The body stream of the next attempt, taken when a retry is decided (so the client's body stops flowing meanwhile). */
  private nextBody: Readable | null = null;
  private retrySlot: Slots | null = null;
  /** Header fields of the request as routed; layers below may append per attempt, a retry starts from these. */
  private readonly headerCount: number;

  constructor(
    private readonly inner: HttpService,
    readonly ex: HttpExchange,
    readonly dest: DestinationRetry,
    readonly replay: ReplayBuffer | null,
    /** The destination is a mesh service: its sidecars' x-mycel-error answers are failures behind them. */
    readonly meshPeer: boolean,
    private readonly slots: Slots | undefined,
  ) {
    this.headerCount = ex.headers.length;
    ex.attempts = [];
  }

  /** Sends the next attempt through the layers below (the balancer picks its endpoint). */
  start(): void {
    const ex = this.ex;
    let headers = ex.headers;
    let body: Readable | null;
    if (this.retries === 0) {
      body = this.replay === null ? null : this.replay.nextAttempt();
    } else {
      headers = headers.slice(0, this.headerCount);
      if (ex.grpc && ex.deadline > 0) setGrpcTimeout(headers, formatGrpcTimeout(ex.deadline - performance.now()));
      body = this.nextBody;
      this.nextBody = null;
    }
    const a = new Attempt(this, headers, body);
    this.current = a;
    (ex.attempts as AttemptRecord[]).push(a);
    ex.attemptRequest = a;
    ex.attemptSink = a;
    ex.upstream = null;
    this.inner.call(ex);
    if (ex.finished) {
      // A layer below answered itself (no endpoints, circuit open).
      this.finish();
      return;
    }
    a.endpoint = ex.endpoint;
    a.call = ex.upstream;
    ex.upstream = this;
    const perTryMs = this.perTryMs();
    if (a.state === PENDING && perTryMs > 0) a.timer = setTimeout(perTryTimedOut, perTryMs, a);
  }

  /** The policy's perTryTimeout, else the route rule's backendRequest timeout (each try is a backend request). */
  perTryMs(): number {
    return this.dest.perTryMs > 0 ? this.dest.perTryMs : (this.ex.routeState?.rule.backendTimeoutMs ?? 0);
  }

  /** After an attempt that got no usable answer: retry, or give the client this failure. */
  failed(a: Attempt, failure: AttemptFailure | null, err: MycelError): void {
    if (failure !== null && this.retryAfterFailure(a, failure, null)) return;
    if (failure === null) {
      a.reason = err.code;
      a.verdict = 'not-retriable';
    }
    a.state = OVER;
    this.finish();
    const ex = this.ex;
    if (a.verdict === 'budget-exhausted') ex.fail(new MycelError('budget-exhausted', `${ex.destination ?? '?'}: the last attempt failed (${err.message}) and the retry budget is spent`));
    else ex.fail(err);
  }

  retryAfterFailure(a: Attempt, failure: AttemptFailure, headers: HeaderList | null): boolean {
    a.reason = failure;
    return this.decide(a, this.dest.policy.afterFailure(this.retries, this.ex.method, this.replayable, failure), headers);
  }

  retryAfterResponse(a: Attempt, headers: HeaderList, trailers: HeaderList | null): boolean {
    const verdict = this.dest.policy.afterResponse(this.retries, this.ex.method, this.replayable, a.status, headers, trailers);
    if (verdict !== 'not-retriable') {
      const grpc = headerValue(trailers, 'grpc-status') ?? headerValue(headers, 'grpc-status');
      const cls = grpc === undefined ? undefined : GRPC_CLASS.get(grpc);
      a.reason = cls ?? String(a.status);
    }
    return this.decide(a, verdict, headers);
  }

  private get replayable(): boolean {
    return this.replay === null || this.replay.replayable;
  }

  /** Records the verdict; for 'retry', takes a retry slot and a budget token, drops the attempt and schedules the next. */
  private decide(a: Attempt, verdict: RetryVerdict, headers: HeaderList | null): boolean {
    a.verdict = verdict;
    if (verdict !== 'retry') return false;
    if (this.slots !== undefined && this.retrySlot === null) {
      if (this.slots.tryAcquire() !== null) {
        a.verdict = 'max-retries';
        return false;
      }
      this.retrySlot = this.slots;
    }
    if (!this.dest.budget.tryWithdraw()) {
      a.verdict = 'budget-exhausted';
      return false;
    }
    a.discard();
    if (this.replay !== null) this.nextBody = this.replay.nextAttempt();
    const wait = this.dest.policy.backoffMs(this.retries, headers);
    this.retries++;
    this.backoff = setTimeout(retryNow, wait, this);
    return true;
  }

  resume(): void {
    const a = this.current;
    if (a !== null && a.callOpen) a.call?.resume();
  }

  /** The exchange is over from outside (client gone, request timeout): stop everything. */
  abort(): void {
    const a = this.current;
    if (a !== null && a.state !== OVER) {
      if (a.state !== COMMITTED) a.verdict = 'abandoned';
      a.discard();
    }
    this.finish();
  }

  /** No attempt will follow: drop the body record, the backoff timer and the retry slot. */
  finish(): void {
    if (this.backoff !== null) {
      clearTimeout(this.backoff);
      this.backoff = null;
    }
    this.replay?.release();
    if (this.nextBody !== null) {
      this.nextBody.destroy();
      this.nextBody = null;
    }
    if (this.retrySlot !== null) {
      this.retrySlot.release();
      this.retrySlot = null;
    }
  }
}

export interface RetryLayerOptions {
  /** The destination's "retries in flight" breaker slots (TrafficPolicy connectionPool.maxRetries), if breakers are on. */
  retrySlots?: (service: ServiceTarget) => Slots | undefined;
}

class Retry implements HttpService {
  constructor(
    private readonly inner: HttpService,
    private readonly registry: RetryRegistry,
    private readonly options: RetryLayerOptions,
  ) {}

  call(ex: HttpExchange): void {
    const svc = ex.service;
    const compiled = svc === null ? null : (svc.policy?.retry ?? null);
    // No retry policy, or a request already under a retry run (a stack with the layer twice): straight on.
    if (compiled === null || ex.attempts !== null) {
      this.inner.call(ex);
      return;
    }
    const service = svc as ServiceTarget;
    const dest = this.registry.get(service, compiled);
    dest.budget.deposit();
    const replay = ex.body === null ? null : new ReplayBuffer(ex.body, dest.policy.bufferLimitBytes);
    new RetryRun(this.inner, ex, dest, replay, !service.external, this.options.retrySlots?.(service)).start();
  }
}

export function retryLayer(registry: RetryRegistry, options: RetryLayerOptions = {}): HttpLayer {
  return (inner) => new Retry(inner, registry, options);
}
