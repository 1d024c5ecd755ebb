// One attempt sent by the balancer: wraps the attempt's sink (ex.attemptSink) and its upstream call (ex.upstream), so
// that however the attempt ends (response, error, abort) the balancer, the outlier detector and the circuit breaker
// learn it exactly once. One object per attempt; it is also the attempt's entry in the decision record (ex.tried).

import { performance } from 'node:perf_hooks';
import type { MycelError } from '../../core/errors.js';
import type { EndpointTarget } from '../config/targets.js';
import type { EndpointBalancer, EndpointState } from '../layers/balance/index.js';
import { NO_RESPONSE } from '../layers/health/index.js';
import { fieldValue, type EndpointAttempt, type HttpExchange } from '../stack/exchange.js';
import type { HeaderList, ResponseSink, UpstreamCall } from '../stack/http-types.js';
import type { DestinationRuntime, EndpointPool } from './destination-runtime.js';
import { affinitySetCookie } from './hash-key.js';

/** Outcome not reported to outlier detection (an abort, or a failure that says nothing about the endpoint). */
const NEUTRAL = -1;

export class Attempt implements ResponseSink, UpstreamCall, EndpointAttempt {
  readonly endpoint: string;
  readonly mode: string;
  status = 0;
  error: string | null = null;
  ejected = false;
  /** The transport's call, once the endpoint layer made it. */
  call: UpstreamCall | null = null;
  private grpcStatus: string | null = null;
  private readonly balancer: EndpointBalancer<EndpointTarget>;
  private started = performance.now();
  private rttMs = -1;
  private done = false;

  constructor(
    private readonly ex: HttpExchange,
    private readonly rt: DestinationRuntime,
    private readonly pool: EndpointPool,
    private readonly state: EndpointState<EndpointTarget>,
    private readonly sink: ResponseSink,
  ) {
    this.endpoint = state.endpoint.key;
    this.mode = pool.mode;
    this.balancer = pool.balancer;
  }

  /** The attempt waited for a new connection: connection set-up is no request latency, so it starts counting now. */
  onConnected(): void {
    this.started = performance.now();
  }

  onInformational(status: number, headers: HeaderList): void {
    this.sink.onInformational(status, headers);
  }

  onResponseHead(status: number, headers: HeaderList): void {
    if (this.rttMs < 0) {
      // Latency to the response head is what the balancer learns: a long streamed body says nothing of the endpoint.
      this.rttMs = performance.now() - this.started;
      this.status = status;
      if (this.ex.grpc) this.grpcStatus = fieldValue(headers, 'grpc-status');
    }
    const cookie = this.ex.affinityCookie;
    const spec = this.pool.hashKey?.cookie;
    if (cookie !== null && spec !== undefined) headers.push('set-cookie', affinitySetCookie(spec, cookie));
    this.sink.onResponseHead(status, headers);
  }

  onResponseData(chunk: Buffer): boolean {
    return this.sink.onResponseData(chunk);
  }

  onResponseEnd(trailers: HeaderList | null): void {
    if (this.ex.grpc && trailers !== null) this.grpcStatus = fieldValue(trailers, 'grpc-status') ?? this.grpcStatus;
    this.finish(this.outlierStatus(), true);
    this.sink.onResponseEnd(trailers);
  }

  onResponseError(err: MycelError): void {
    this.error = err.code;
    // Connect failures, resets and timeouts count against the endpoint; a refusal by our own breaker or a broken
    // client request does not.
    this.finish(err.source === 'upstream' && err.code !== 'circuit-open' ? NO_RESPONSE : NEUTRAL, false);
    this.sink.onResponseError(err);
  }

  resume(): void {
    this.call?.resume();
  }

  /** The exchange (or the retry layer) gave up on this attempt: the time waited so far still tells the balancer. */
  abort(): void {
    this.finish(NEUTRAL, true);
    this.call?.abort();
  }

  /** The attempt could not be sent (the endpoint layer threw). */
  cancel(): void {
    this.finish(NEUTRAL, false);
  }

  private finish(outlierStatus: number, ok: boolean): void {
    if (this.done) return;
    this.done = true;
    const rtt = this.rttMs >= 0 ? this.rttMs : performance.now() - this.started;
    this.balancer.end(this.state, rtt, ok && this.status < 500);
    this.rt.breaker.requests.release();
    const outliers = this.rt.outliers;
    if (outlierStatus !== NEUTRAL && outliers !== null) {
      const before = outliers.generation;
      outliers.report(this.endpoint, outlierStatus);
      this.ejected = outliers.generation !== before;
    }
  }

  /** The HTTP status outlier detection sees; a gRPC failure in grpc-status counts as the status it maps to. */
  private outlierStatus(): number {
    const g = this.grpcStatus;
    if (g === null || g === '0' || this.status !== 200) return this.status;
    if (g === '14') return 503; // UNAVAILABLE
    if (g === '13' || g === '2' || g === '15') return 500; // INTERNAL, UNKNOWN, DATA_LOSS
    return this.status;
  }
}
