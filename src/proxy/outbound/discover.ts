// Outbound discovery: which mesh service (and which of its ports) a request is for, from the upstream binding it
// arrived on, or else from its authority (Host, :authority, absolute-form URI).

import { MycelError } from '../../core/errors.js';
import { splitAuthority, type PortTarget, type ProxyPlan, type ServiceTarget } from '../config/plan.js';
import type { HttpExchange } from '../stack/exchange.js';
import type { HttpLayer, HttpService } from '../stack/service.js';

export interface PlanHolder {
  readonly current: ProxyPlan;
  /**
   * With a control plane: asks it about a host the plan does not know and resolves once it answered (true: look again).
   * Absent when the config comes from files, where an unknown host is unknown for good.
   */
  discover?(host: string): Promise<boolean>;
}

/** A local port that always leads to one service (`--upstream api=9191`). */
export interface Binding {
  service: string;
  /** The service port to use; undefined: the service's only (or first) port. */
  servicePort: number | undefined;
}

export type Resolution = { service: ServiceTarget; port: PortTarget } | MycelError;

/** Resolves a host[:port] or a binding to a service port; the error says what is missing. */
export function resolveDestination(plan: ProxyPlan, authority: string, binding: Binding | null): Resolution {
  let host: string;
  let port: number | undefined;
  if (binding !== null) {
    host = binding.service;
    port = binding.servicePort;
  } else {
    const a = splitAuthority(authority);
    if (a === undefined) return new MycelError(authority === '' ? 'bad-request' : 'unknown-service', authority === '' ? 'the request names no destination (no Host)' : `malformed authority "${authority.slice(0, 100)}"`);
    host = a.host;
    port = a.port;
  }
  const service = plan.lookupHost(host);
  if (service === undefined) return new MycelError('unknown-service', `no service is named "${host.slice(0, 100)}"`);
  const p = service.portFor(port);
  if (p === undefined) return new MycelError('unknown-service', `service ${service.name} has no port ${port}`);
  return { service, port: p };
}

/**
 * After `miss`: when it is an unknown host and a control plane can be asked about it, asks and calls `then` once it
 * answered (true: the plan may know the host now) and returns true; else returns false and the caller fails with `miss`.
 */
export function askControlPlane(plans: PlanHolder, authority: string, binding: Binding | null, miss: MycelError, then: (again: boolean) => void): boolean {
  if (miss.code !== 'unknown-service' || plans.discover === undefined) return false;
  const host = binding?.service ?? splitAuthority(authority)?.host;
  if (host === undefined) return false;
  void plans.discover(host).then(then);
  return true;
}

class Discover implements HttpService {
  constructor(
    private readonly inner: HttpService,
    private readonly plans: PlanHolder,
    private readonly binding: Binding | null,
    private readonly self: string,
  ) {}

  call(ex: HttpExchange): void {
    ex.source = this.self;
    const r = resolveDestination(this.plans.current, ex.authority, this.binding);
    if (r instanceof MycelError) {
      // Off the hot path: the first request to a host this proxy has not used yet waits for the control plane's answer.
      const asked = askControlPlane(this.plans, ex.authority, this.binding, r, (again) => {
        const next = again ? resolveDestination(this.plans.current, ex.authority, this.binding) : r;
        if (next instanceof MycelError) ex.fail(next);
        else this.resolved(ex, next);
      });
      if (!asked) ex.fail(r);
      return;
    }
    this.resolved(ex, r);
  }

  private resolved(ex: HttpExchange, r: { service: ServiceTarget; port: PortTarget }): void {
    ex.service = r.service;
    ex.port = r.port;
    ex.destination = r.service.name;
    this.inner.call(ex);
  }
}

export function discoverLayer(plans: PlanHolder, binding: Binding | null, self: string): HttpLayer {
  return (inner) => new Discover(inner, plans, binding, self);
}
