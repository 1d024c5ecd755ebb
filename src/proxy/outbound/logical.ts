// Outbound logical stage (between discovery and the balancer): when the destination service has routes for the port,
// picks the rule by Gateway API precedence, runs its filters in order, draws a backend by weight, runs that backend's
// filters, and hands the request on for that service or subset. A service without routes goes to itself, as before.

import { MycelError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { CompiledRule, RequestStep, RouteBackend } from '../config/route-table.js';
import type { HttpExchange } from '../stack/exchange.js';
import type { HttpLayer, HttpService } from '../stack/service.js';
import { faultAbort } from './filters/fault.js';
import { Mirrors } from './filters/mirror.js';
import { respondRedirect } from './filters/redirect.js';
import { startBackendTimeout, startRequestTimeout } from './filters/route-timeout.js';
import { applyRewrite } from './filters/url-rewrite.js';
import { retryAfterSeconds } from '../layers/rate-limit/index.js';

/** What a filter step did: go on with the next one, wait (a delay resumes the chain later), or end the exchange. */
const NEXT = 0;
const WAIT = 1;
const DONE = 2;

function resume(stage: Logical, ex: HttpExchange): void {
  if (!ex.finished) stage.proceed(ex);
}

export class Logical implements HttpService {
  readonly mirrors: Mirrors;

  constructor(
    private readonly inner: HttpService,
    log: Logger,
    /** Uniform in [0, 1): the draws of weights and percentages (injectable for tests). */
    private readonly random: () => number = Math.random,
  ) {
    this.mirrors = new Mirrors(inner, log);
  }

  call(ex: HttpExchange): void {
    const svc = ex.service;
    const port = ex.port;
    const table = svc !== null && port !== null ? svc.routes.get(port.port)?.candidates : undefined;
    if (table === undefined || table === null) {
      this.inner.call(ex);
      return;
    }
    // gRPC requests follow the GRPCRoutes of the port when it has any; Gateway API never merges the two kinds.
    const c = ex.grpc && table.grpc.length > 0 ? table.matchGrpc(ex.authority, ex.path, ex.headers) : table.matchHttp(ex.method, ex.authority, ex.path, ex.headers);
    if (c === null) {
      const path = ex.path.length > 100 ? ex.path.slice(0, 100) + '...' : ex.path;
      ex.fail(new MycelError('no-route', `no rule of the routes of ${svc!.name}:${port!.port} matches ${ex.method} ${path}`));
      return;
    }
    const rule = c.rule;
    ex.route = rule.route;
    ex.routeRule = rule.ruleIndex;
    if (rule.requestTimeoutMs > 0) startRequestTimeout(ex, rule.requestTimeoutMs);
    ex.routeState = { rule, backend: null, step: 0 };
    this.proceed(ex);
  }

  /** Runs the remaining filter steps of the rule, then of the chosen backend, then sends the request on. */
  proceed(ex: HttpExchange): void {
    const state = ex.routeState!;
    const rule = state.rule;
    for (;;) {
      const steps = state.backend === null ? rule.steps : state.backend.steps;
      while (state.step < steps.length) {
        const r = this.run(steps[state.step++] as RequestStep, ex);
        if (r !== NEXT) return;
      }
      if (state.backend !== null) break;
      const b = this.pickBackend(ex, rule);
      if (b === null) return;
      state.backend = b;
      state.step = 0;
    }
    // backendRequest bounds each request to a backend: with a retry policy each try is one (the retry layer times
    // them); without, the one request is.
    if (rule.backendTimeoutMs > 0 && ex.service?.policy?.retry == null) startBackendTimeout(ex, rule.backendTimeoutMs);
    this.inner.call(ex);
  }

  private pickBackend(ex: HttpExchange, rule: CompiledRule): RouteBackend | null {
    const b = rule.backends.pick(this.random());
    if (b === null || b.target === null) {
      ex.fail(new MycelError('route-invalid', b === null ? `every backend of rule ${rule.ruleIndex} of route ${rule.route} has weight 0` : `route ${rule.route} rule ${rule.ruleIndex}: ${b.invalid ?? 'invalid backend'}`));
      return null;
    }
    const t = b.target;
    ex.backend = t;
    ex.service = t.service;
    ex.port = t.port;
    ex.destination = t.service.name;
    ex.responseModifiers = b.responseModifiers;
    return b;
  }

  private run(step: RequestStep, ex: HttpExchange): number {
    switch (step.type) {
      case 'headers':
        ex.headers = step.modifier.apply(ex.headers);
        return NEXT;
      case 'rewrite':
        applyRewrite(ex, step.hostname, step.path);
        return NEXT;
      case 'redirect':
        respondRedirect(ex, step.redirect);
        return DONE;
      case 'mirror':
        this.mirrors.send(ex, step.target, step.numerator, step.denominator);
        return NEXT;
      case 'delay':
        if (step.ms <= 0 || this.random() * 100 >= step.percent) return NEXT;
        ex.addTimer(setTimeout(resume, step.ms, this, ex));
        return WAIT;
      case 'abort':
        if (this.random() * 100 >= step.percent) return NEXT;
        ex.fail(faultAbort(step.fault, step.http, step.grpc));
        return DONE;
      case 'rate-limit': {
        const waitMs = step.limiter.take('');
        if (waitMs === 0) return NEXT;
        ex.fail(new MycelError('rate-limited', `over the LocalRateLimit ${step.name} of route ${ex.route ?? '?'} (${Math.round(step.ratePerSecond * 1000) / 1000}/s)`, { headers: ['retry-after', retryAfterSeconds(waitMs)] }));
        return DONE;
      }
      case 'invalid':
        ex.fail(new MycelError('route-invalid', `route ${ex.route ?? '?'}: ${step.reason}`));
        return DONE;
    }
  }
}

export function logicalLayer(log: Logger, random?: () => number): HttpLayer {
  return (inner) => new Logical(inner, log, random);
}
