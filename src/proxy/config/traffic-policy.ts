// Compiles a TrafficPolicy into the option objects of the resilience layers (src/proxy/layers/*), durations in ms,
// once per config change; the request path reads these and never looks at the resource again.

import { parseDuration } from '../../api/v1alpha1/duration.js';
import type { TrafficPolicySpec } from '../../api/v1alpha1/policies.js';
import type { BalancerOptions } from '../layers/balance/index.js';
import type { BreakerLimits } from '../layers/breaker/index.js';
import type { ActiveHealthOptions } from '../layers/health/active-checker.js';
import type { OutlierOptions } from '../layers/health/outlier-detector.js';
import type { RateLimitOptions } from '../layers/rate-limit/index.js';
import type { RetryBudgetOptions, RetryOptions } from '../layers/retry/index.js';

export interface HashKeySpec {
  header?: string;
  cookie?: { name: string; ttlMs?: number; path?: string };
  sourceIp?: true;
}

export interface CompiledRetry {
  policy: RetryOptions;
  budget: RetryBudgetOptions;
  /** Timeout of each try; null: each try may use what is left of the request timeout. */
  perTryTimeoutMs: number | null;
}

export interface CompiledTrafficPolicy {
  /** The name of the policy, for the decision record. */
  readonly name: string;
  readonly balancer: BalancerOptions;
  /** What RingHash / Maglev hash; null for the other balancers. */
  readonly hashKey: HashKeySpec | null;
  readonly limits: BreakerLimits;
  /** Passive outlier detection and the panic threshold; null: off. */
  readonly outlier: (OutlierOptions & { panicThresholdPercent: number }) | null;
  readonly healthCheck: ActiveHealthOptions | null;
  readonly retry: CompiledRetry | null;
  readonly timeoutMs: number | null;
  /** Applied inbound by the service's own sidecars. */
  readonly rateLimit: (RateLimitOptions & { perSourceIdentity: boolean }) | null;
  readonly locality: { preferLocalZone: boolean; failoverThresholdPercent: number };
}

/** Durations were validated by the schema; a missing one means "use the layer's default". */
function ms(d: string | undefined): number | undefined {
  return d === undefined ? undefined : parseDuration(d);
}

const UNIT_SECONDS = { second: 1, minute: 60, hour: 3600 } as const;

export const DEFAULT_BALANCER: BalancerOptions = { policy: 'EWMA' };

export function compileTrafficPolicy(name: string, spec: TrafficPolicySpec): CompiledTrafficPolicy {
  const lb = spec.loadBalancer;
  let balancer: BalancerOptions = DEFAULT_BALANCER;
  let hashKey: HashKeySpec | null = null;
  if (lb !== undefined) {
    switch (lb.type) {
      case 'RoundRobin':
      case 'LeastRequest':
        balancer = { policy: lb.type };
        break;
      case 'EWMA':
        balancer = { policy: 'EWMA', decayMs: ms(lb.decay) ?? 10_000 };
        break;
      case 'RingHash':
        balancer = { policy: 'RingHash', minimumRingSize: lb.minimumRingSize };
        hashKey = hashKeyOf(lb.hashKey);
        break;
      case 'Maglev':
        balancer = { policy: 'Maglev', tableSize: lb.tableSize };
        hashKey = hashKeyOf(lb.hashKey);
        break;
    }
  }
  const cp = spec.connectionPool ?? {};
  const limits: BreakerLimits = {
    ...(cp.maxConnections !== undefined ? { maxConnections: cp.maxConnections } : {}),
    ...(cp.maxPendingRequests !== undefined ? { maxPendingRequests: cp.maxPendingRequests } : {}),
    ...(cp.maxRequests !== undefined ? { maxRequests: cp.maxRequests } : {}),
    ...(cp.maxRetries !== undefined ? { maxRetries: cp.maxRetries } : {}),
  };
  const od = spec.outlierDetection;
  const outlier =
    od === undefined
      ? null
      : {
          consecutive5xx: od.consecutive5xx,
          consecutiveGatewayErrors: od.consecutiveGatewayErrors ?? 0,
          baseEjectionMs: ms(od.baseEjectionTime) ?? 30_000,
          maxEjectionMs: ms(od.maxEjectionTime) ?? 300_000,
          maxEjectionPercent: od.maxEjectionPercent,
          panicThresholdPercent: od.panicThreshold,
        };
  const hc = spec.healthCheck;
  let healthCheck: ActiveHealthOptions | null = null;
  if (hc !== undefined) {
    const common = { intervalMs: ms(hc.interval) ?? 10_000, timeoutMs: ms(hc.timeout) ?? 1000, healthyThreshold: hc.healthyThreshold, unhealthyThreshold: hc.unhealthyThreshold };
    if (hc.http !== undefined) healthCheck = { type: 'http', path: hc.http.path, expectedStatuses: hc.http.expectedStatuses, ...common };
    else if (hc.grpc !== undefined) healthCheck = { type: 'grpc', grpcService: hc.grpc.service, ...common };
    else healthCheck = { type: 'tcp', ...common };
  }
  const r = spec.retry;
  const retry: CompiledRetry | null =
    r === undefined
      ? null
      : {
          policy: {
            attempts: r.attempts,
            retryOn: r.retryOn,
            retriableStatusCodes: r.retriableStatusCodes,
            allowNonIdempotent: r.retryNonIdempotent,
            backoffBaseMs: ms(r.backoff.baseInterval) ?? 25,
            backoffMaxMs: ms(r.backoff.maxInterval) ?? 250,
          },
          budget: { retryRatio: r.budget.ratio, minRetriesPerSecond: r.budget.minRetriesPerSecond, ttlMs: ms(r.budget.ttl) ?? 10_000 },
          perTryTimeoutMs: ms(r.perTryTimeout) ?? null,
        };
  const rl = spec.rateLimit;
  let rateLimit: CompiledTrafficPolicy['rateLimit'] = null;
  if (rl !== undefined) {
    const ratePerSecond =
      rl.requestsPerUnit !== undefined && rl.unit !== undefined ? rl.requestsPerUnit / UNIT_SECONDS[rl.unit] : (rl.tokens as number) / ((ms(rl.fillInterval) as number) / 1000);
    const burst = rl.burst ?? rl.requestsPerUnit ?? rl.tokens;
    rateLimit = { ratePerSecond, ...(burst !== undefined ? { burst } : {}), perSourceIdentity: rl.perSourceIdentity };
  }
  return {
    name,
    balancer,
    hashKey,
    limits,
    outlier,
    healthCheck,
    retry,
    timeoutMs: ms(spec.timeout) ?? null,
    rateLimit,
    locality: { preferLocalZone: spec.locality.preferLocalZone, failoverThresholdPercent: spec.locality.failoverThresholdPercent },
  };
}

function hashKeyOf(k: { header?: string | undefined; cookie?: { name: string; ttl?: string | undefined; path?: string | undefined } | undefined; sourceIP?: true | undefined }): HashKeySpec {
  if (k.header !== undefined) return { header: k.header.toLowerCase() };
  if (k.cookie !== undefined) {
    const ttlMs = ms(k.cookie.ttl);
    return { cookie: { name: k.cookie.name, ...(ttlMs !== undefined ? { ttlMs } : {}), ...(k.cookie.path !== undefined ? { path: k.cookie.path } : {}) } };
  }
  return { sourceIp: true };
}
