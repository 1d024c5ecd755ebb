// Long-lived state of one destination service across config pushes: its circuit breaker, outlier detector and active
// health checker, and an endpoint pool (healthy view + balancer) for the whole service and for each of its subsets.
// A config push re-applies the service; endpoints that stay keep their balancer state, health and ejections.

import { createBalancer, type BalancerOptions, type EndpointBalancer, type EndpointState } from '../layers/balance/index.js';
import { CircuitBreaker } from '../layers/breaker/index.js';
import { ActiveHealthChecker, HealthyEndpoints, OutlierDetector, type EjectionSource, type HealthConnect, type HealthSource, type HealthyEndpointsOptions, type RoutingMode } from '../layers/health/index.js';
import { DEFAULT_BALANCER, type CompiledTrafficPolicy, type HashKeySpec } from '../config/traffic-policy.js';
import type { EndpointTarget, ServiceTarget } from '../config/targets.js';

/** What the runtime needs from the sidecar: the caller's zone, a connector for health checks, and event sinks. */
export interface RuntimeDeps {
  /** The caller's zone (the sidecar's `zone` label); undefined: locality plays no part. */
  readonly localZone: string | undefined;
  /** Opens a check connection to an endpoint of `rt` (mTLS through its sidecar, or plain for external services). */
  healthConnect(rt: DestinationRuntime): HealthConnect<EndpointTarget>;
  onEject(rt: DestinationRuntime, endpoint: string, forMs: number, times: number): void;
  onHealthChange(rt: DestinationRuntime, endpoint: EndpointTarget, healthy: boolean, detail: string): void;
}

/** Panic threshold without an outlierDetection (Envoy's default too). */
const DEFAULT_PANIC_PERCENT = 50;
const DEFAULT_FAILOVER_PERCENT = 70;

/** The endpoints of one backend (the service, or a subset) with their healthy view and their balancer. */
export class EndpointPool {
  balancer: EndpointBalancer<EndpointTarget>;
  view: HealthyEndpoints<EndpointTarget>;
  /** What RingHash / Maglev hash; null for the other balancers. */
  hashKey: HashKeySpec | null = null;
  private balancerKey = '';
  private viewKey = '';
  /** The view version the balancer was last fed. */
  private seen = -1;
  private all: readonly EndpointTarget[] = [];

  constructor(
    /** "api" or "api.v2", for errors and logs. */
    readonly name: string,
    private readonly sources: { active: HealthSource<EndpointTarget>; outliers: EjectionSource },
  ) {
    this.balancer = createBalancer<EndpointTarget>(DEFAULT_BALANCER);
    this.view = new HealthyEndpoints<EndpointTarget>({}, sources);
  }

  /** Applies a (possibly changed) policy; a balancer or view is rebuilt only when its options changed. */
  configure(balancer: BalancerOptions, hashKey: HashKeySpec | null, view: HealthyEndpointsOptions): void {
    this.hashKey = hashKey;
    const bk = JSON.stringify(balancer);
    if (bk !== this.balancerKey) {
      this.balancerKey = bk;
      this.balancer = createBalancer<EndpointTarget>(balancer);
      this.seen = -1;
    }
    const vk = JSON.stringify(view);
    if (vk !== this.viewKey) {
      this.viewKey = vk;
      this.view = new HealthyEndpoints<EndpointTarget>(view, this.sources);
      this.view.update(this.all);
      this.seen = -1;
    }
  }

  /** New endpoint objects from a config push (the same keys keep their state). */
  update(endpoints: readonly EndpointTarget[]): void {
    this.all = endpoints;
    this.view.update(endpoints);
  }

  get size(): number {
    return this.all.length;
  }

  /** How the last pick chose its set: every healthy endpoint, the local zone's, or all (panic). */
  get mode(): RoutingMode {
    return this.view.mode;
  }

  /** Per request: brings the balancer up to date with health and ejections (cheap when nothing changed), then picks. */
  pick(hashKey: string | undefined): EndpointState<EndpointTarget> | undefined {
    const v = this.view.refresh();
    if (v !== this.seen) {
      this.seen = v;
      this.balancer.update(this.view.endpoints);
    }
    return this.balancer.pick(hashKey);
  }
}

/** The active checker as every pool's view sees it: endpoints are fed to it once, by the runtime, not by each view. */
class SharedActive implements HealthSource<EndpointTarget> {
  constructor(private readonly rt: DestinationRuntime) {}
  get generation(): number {
    return this.rt.checker?.generation ?? 0;
  }
  isHealthy(key: string): boolean {
    const c = this.rt.checker;
    return c === null || c.isHealthy(key);
  }
  update(): void {}
}

/** The outlier detector as every pool's view sees it (shared by the subsets: an ejected endpoint is out of all). */
class SharedOutliers implements EjectionSource {
  constructor(private readonly rt: DestinationRuntime) {}
  get generation(): number {
    return this.rt.outliers?.generation ?? 0;
  }
  ejectedUntil(key: string): number {
    return this.rt.outliers?.ejectedUntil(key) ?? 0;
  }
  update(): void {}
}

export class DestinationRuntime {
  /** Per destination, across every caller request (the retry layer takes `breaker.retries` for each retry). */
  readonly breaker = new CircuitBreaker();
  outliers: OutlierDetector | null = null;
  checker: ActiveHealthChecker<EndpointTarget> | null = null;
  /** All endpoints of the service. */
  readonly pool: EndpointPool;
  /** The service as of the last applied config (the health connector reads its identity and external flag). */
  service: ServiceTarget;
  /** Health checks start with the first request to the destination, so a sidecar checks only what it calls. */
  private used = false;
  private readonly subsets = new Map<string, EndpointPool>();
  private readonly sources: { active: HealthSource<EndpointTarget>; outliers: EjectionSource };
  private outlierKey = '';
  private checkKey = '';

  constructor(
    service: ServiceTarget,
    private readonly deps: RuntimeDeps,
  ) {
    this.service = service;
    this.sources = { active: new SharedActive(this), outliers: new SharedOutliers(this) };
    this.pool = new EndpointPool(service.name, this.sources);
    this.apply(service);
  }

  get name(): string {
    return this.service.name;
  }

  get policy(): CompiledTrafficPolicy | null {
    return this.service.policy;
  }

  /** A config push: the service's new endpoints, subsets and policy. */
  apply(svc: ServiceTarget): void {
    this.service = svc;
    const p = svc.policy;
    this.breaker.setLimits(p?.limits ?? {});
    const keys = svc.endpoints.map((e) => e.key);

    const ok = p?.outlier ? JSON.stringify(p.outlier) : '';
    if (ok !== this.outlierKey) {
      this.outlierKey = ok;
      this.outliers = p?.outlier ? new OutlierDetector(p.outlier, undefined, (key, until, times) => this.deps.onEject(this, key, until - performance.now(), times)) : null;
    }
    this.outliers?.update(keys);

    const hk = p?.healthCheck ? `${svc.external}|${JSON.stringify(p.healthCheck)}` : '';
    if (hk !== this.checkKey) {
      this.checkKey = hk;
      this.checker?.stop();
      this.checker = p?.healthCheck
        ? new ActiveHealthChecker<EndpointTarget>(p.healthCheck, this.deps.healthConnect(this), { onChange: (e, healthy, detail) => this.deps.onHealthChange(this, e, healthy, detail) })
        : null;
      this.checker?.update(svc.endpoints);
      if (this.used) this.checker?.start();
    } else {
      this.checker?.update(svc.endpoints);
    }

    const view: HealthyEndpointsOptions = {
      panicThresholdPercent: p?.outlier?.panicThresholdPercent ?? DEFAULT_PANIC_PERCENT,
      localityFailoverPercent: p?.locality.failoverThresholdPercent ?? DEFAULT_FAILOVER_PERCENT,
      ...(this.deps.localZone !== undefined && (p?.locality.preferLocalZone ?? true) ? { localZone: this.deps.localZone } : {}),
    };
    const balancer = p?.balancer ?? DEFAULT_BALANCER;
    const hashKey = p?.hashKey ?? null;
    this.pool.configure(balancer, hashKey, view);
    this.pool.update(svc.endpoints);
    for (const [name, labels] of svc.subsets) {
      let pool = this.subsets.get(name);
      if (pool === undefined) this.subsets.set(name, (pool = new EndpointPool(`${svc.name}.${name}`, this.sources)));
      pool.configure(balancer, hashKey, view);
      pool.update(svc.endpoints.filter((e) => matches(e.labels, labels)));
    }
    for (const name of this.subsets.keys()) if (!svc.subsets.has(name)) this.subsets.delete(name);
  }

  /** The pool of a backend: the whole service (null), or one subset. */
  poolFor(subset: string | null): EndpointPool | undefined {
    return subset === null ? this.pool : this.subsets.get(subset);
  }

  /** Called per request; the first one starts the active health checks. */
  use(): void {
    if (this.used) return;
    this.used = true;
    this.checker?.start();
  }

  /** The service left the config, or the sidecar stops: no more checks. */
  stop(): void {
    this.checker?.stop();
  }
}

function matches(labels: Readonly<Record<string, string>>, wanted: Readonly<Record<string, string>>): boolean {
  for (const k in wanted) if (labels[k] !== wanted[k]) return false;
  return true;
}
