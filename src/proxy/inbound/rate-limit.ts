// Inbound rate limit: the TrafficPolicy rateLimit of the sidecar's own service, one bucket for all callers or one per
// calling identity. Over the limit the request is answered 429 (gRPC: RESOURCE_EXHAUSTED) with Retry-After and
// x-mycel-error rate-limited, and nothing reaches the app. The limiter outlives config changes that keep its options.

import { MycelError } from '../../core/errors.js';
import type { CompiledTrafficPolicy } from '../config/traffic-policy.js';
import { RateLimiter, retryAfterSeconds } from '../layers/rate-limit/index.js';
import type { PlanHolder } from '../outbound/discover.js';
import type { HttpExchange } from '../stack/exchange.js';
import type { HttpLayer, HttpService } from '../stack/service.js';

type RateLimitOptions = NonNullable<CompiledTrafficPolicy['rateLimit']>;

class InboundRateLimit implements HttpService {
  private options: RateLimitOptions | null = null;
  private limiter: RateLimiter | null = null;

  constructor(
    private readonly inner: HttpService,
    private readonly plans: PlanHolder,
    private readonly self: string,
  ) {}

  call(ex: HttpExchange): void {
    const rl = this.plans.current.self?.policy?.rateLimit ?? null;
    if (rl === null) {
      this.inner.call(ex);
      return;
    }
    const limiter = rl === this.options ? (this.limiter as RateLimiter) : this.configure(rl);
    // A caller without a verified identity (PERMISSIVE plain text) shares the "" bucket.
    const waitMs = limiter.take(rl.perSourceIdentity ? (ex.peerIdentity ?? '') : '');
    if (waitMs === 0) {
      this.inner.call(ex);
      return;
    }
    ex.destination = this.self;
    const per = rl.perSourceIdentity ? ` for ${ex.peerIdentity ?? 'unidentified callers'}` : '';
    ex.fail(new MycelError('rate-limited', `over the rate limit of ${this.self}${per} (${round(rl.ratePerSecond)}/s)`, { headers: ['retry-after', retryAfterSeconds(waitMs)] }));
  }

  /** A config change: keep the limiter (and its buckets) when the numbers are the same, else start afresh. */
  private configure(rl: RateLimitOptions): RateLimiter {
    const o = this.options;
    if (this.limiter === null || o === null || o.ratePerSecond !== rl.ratePerSecond || o.burst !== rl.burst || o.perSourceIdentity !== rl.perSourceIdentity) {
      this.limiter = new RateLimiter(rl);
    }
    this.options = rl;
    return this.limiter;
  }
}

function round(n: number): string {
  return String(Math.round(n * 1000) / 1000);
}

export function inboundRateLimitLayer(plans: PlanHolder, self: string): HttpLayer {
  return (inner) => new InboundRateLimit(inner, plans, self);
}
