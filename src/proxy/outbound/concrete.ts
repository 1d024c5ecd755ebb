// Outbound concrete stage: for the backend a request goes to (the service, or the subset a route chose), takes a
// circuit-breaker request slot (503 circuit-open at once when the destination is at its limit), picks an endpoint
// with the destination's balancer over its healthy endpoints, and observes the attempt's outcome for them.

import { MycelError } from '../../core/errors.js';
import type { EndpointAttempt, HttpExchange } from '../stack/exchange.js';
import type { EndpointTarget } from '../config/plan.js';
import type { EndpointState } from '../layers/balance/index.js';
import type { HttpLayer, HttpService } from '../stack/service.js';
import { Attempt } from './attempt.js';
import type { DestinationRuntime, EndpointPool } from './destination-runtime.js';
import { requestHashKey } from './hash-key.js';

class Balance implements HttpService {
  constructor(private readonly inner: HttpService) {}

  call(ex: HttpExchange): void {
    const svc = ex.service;
    const rt = svc?.runtime;
    if (rt === null || rt === undefined) {
      this.withoutRuntime(ex);
      return;
    }
    rt.use();
    const backend = ex.backend;
    const pool = backend === null ? rt.pool : rt.poolFor(backend.subset);
    if (pool === undefined) {
      ex.fail(new MycelError('no-endpoints', `service ${rt.name} has no subset ${backend?.subset ?? ''}`));
      return;
    }
    const slots = rt.breaker.requests;
    if (slots.tryAcquire() !== null) {
      ex.fail(new MycelError('circuit-open', `max-requests: ${slots.count} requests to ${rt.name} are in flight, the limit of its TrafficPolicy`));
      return;
    }
    const hashKey = pool.hashKey === null ? undefined : requestHashKey(ex, pool.hashKey);
    let s = pool.pick(hashKey);
    // A retry goes elsewhere when it can: without this, concurrent requests taking the other endpoints' turns (or a
    // random draw) could send every attempt of one request to the same failing endpoint. A hash key keeps its affinity.
    const tried = ex.tried;
    if (s !== undefined && tried !== null && hashKey === undefined && triedOn(tried, s.endpoint.key)) s = elsewhere(pool, s, tried);
    if (s === undefined) {
      slots.release();
      ex.fail(new MycelError('no-endpoints', noEndpoints(rt, pool.name, pool.size)));
      return;
    }
    pool.balancer.start(s);
    const attempt = new Attempt(ex, rt, pool, s, ex.attemptSink);
    (ex.tried ??= []).push(attempt);
    ex.target = s.endpoint;
    ex.endpoint = s.endpoint.key;
    ex.attemptSink = attempt;
    try {
      this.inner.call(ex);
    } catch (err) {
      attempt.cancel();
      throw err;
    }
    // Aborts of this attempt (timeouts, the client leaving, the retry layer) pass through the attempt first.
    attempt.call = ex.upstream;
    ex.upstream = attempt;
  }

  /** A plan without runtime state (tests of the stages above): plain rotation over the endpoints. */
  private withoutRuntime(ex: HttpExchange): void {
    const svc = ex.service;
    const backend = ex.backend;
    const ep = backend !== null ? backend.pickEndpoint() : svc?.pickEndpoint();
    if (svc === null || ep === undefined) {
      ex.fail(new MycelError('no-endpoints', `${backend !== null && backend.subset !== null ? `subset ${backend.name}` : `service ${svc?.name ?? '?'}`} has no endpoints`));
      return;
    }
    ex.target = ep;
    ex.endpoint = ep.key;
    this.inner.call(ex);
  }
}

/** One more pick (the balancer's preference among the rest), else the untried endpoint with the fewest in flight. */
function elsewhere(pool: EndpointPool, s: EndpointState<EndpointTarget>, tried: readonly EndpointAttempt[]): EndpointState<EndpointTarget> {
  const again = pool.pick(undefined);
  if (again !== undefined && !triedOn(tried, again.endpoint.key)) return again;
  let best: EndpointState<EndpointTarget> | undefined;
  for (const c of pool.balancer.endpoints) if (!triedOn(tried, c.endpoint.key) && (best === undefined || c.inFlight < best.inFlight)) best = c;
  return best ?? s;
}

function triedOn(tried: readonly EndpointAttempt[], key: string): boolean {
  for (let i = 0; i < tried.length; i++) if (tried[i]!.endpoint === key) return true;
  return false;
}

function noEndpoints(rt: DestinationRuntime, name: string, total: number): string {
  if (total === 0) return `${name === rt.name ? 'service' : 'subset'} ${name} has no endpoints`;
  return `none of the ${total} endpoints of ${name} is healthy (health checks or outlier ejections; panic threshold 0)`;
}

export const balanceLayer = (): HttpLayer => (inner) => new Balance(inner);
