// Every destination's runtime state, kept across config pushes by namespace/name: attaches it to the services of a
// plan before the plan goes live, and drops (and stops the health checks of) services that left the config.

import type { ProxyPlan } from '../config/plan.js';
import { DestinationRuntime, type RuntimeDeps } from './destination-runtime.js';

export class Destinations {
  private readonly byKey = new Map<string, DestinationRuntime>();

  constructor(private readonly deps: RuntimeDeps) {}

  /** Gives every service of `plan` its runtime (new, or the one it had in the previous plan, updated). */
  attach(plan: ProxyPlan): void {
    const keep = new Set<string>();
    for (const svc of plan.services.values()) {
      const key = `${svc.namespace}/${svc.name}`;
      keep.add(key);
      let rt = this.byKey.get(key);
      if (rt === undefined) this.byKey.set(key, (rt = new DestinationRuntime(svc, this.deps)));
      else rt.apply(svc);
      svc.runtime = rt;
    }
    for (const [key, rt] of this.byKey) {
      if (keep.has(key)) continue;
      rt.stop();
      this.byKey.delete(key);
    }
  }

  values(): IterableIterator<DestinationRuntime> {
    return this.byKey.values();
  }

  /** The sidecar drains: stop every health check. */
  stop(): void {
    for (const rt of this.byKey.values()) rt.stop();
  }
}
