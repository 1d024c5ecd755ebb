// What a plan resolves requests to: services with their ports and endpoints, subsets of them, and the backends that
// routes send to. Built by compilePlan and immutable after that, except for the round-robin cursors and the runtime
// state the sidecar attaches before the plan goes live (balancers, health, breaker: outbound/destination-runtime.ts).

import type { AppProtocol } from '../../api/v1alpha1/resources.js';
import type { PortRoutes } from './route-table.js';
import type { CompiledTrafficPolicy } from './traffic-policy.js';
import type { DestinationRuntime } from '../outbound/destination-runtime.js';

const NO_ROUTES: ReadonlyMap<number, PortRoutes> = new Map();

export interface EndpointTarget {
  /** address:port, the key of its connection pool. */
  readonly key: string;
  readonly address: string;
  readonly port: number;
  readonly labels: Readonly<Record<string, string>>;
}

export interface PortTarget {
  readonly port: number;
  /** The port's name in the Service, when it has one (a route's parentRef may name it as sectionName). */
  readonly name?: string | undefined;
  /** Declared protocol, or 'detect' to sniff HTTP/1 and HTTP/2 and fall back to TCP. */
  readonly protocol: AppProtocol | 'detect';
}

/** A list of endpoints with round-robin choice (the traffic issue brings the real balancers). */
export class EndpointSet {
  private cursor = 0;
  constructor(readonly endpoints: readonly EndpointTarget[]) {}

  pick(): EndpointTarget | undefined {
    const eps = this.endpoints;
    if (eps.length === 0) return undefined;
    const i = this.cursor++ % eps.length;
    if (this.cursor > 1e9) this.cursor = 0;
    return eps[i];
  }
}

export class ServiceTarget {
  /** All endpoints of the service (its subsets have their own sets). */
  readonly all: EndpointSet;
  /** Routes attached to this service, by the port they apply to; set once when the plan is compiled. */
  routes: ReadonlyMap<number, PortRoutes> = NO_ROUTES;
  /** The TrafficPolicy targeting this service, compiled; null: the mesh defaults. Set once when the plan is compiled. */
  policy: CompiledTrafficPolicy | null = null;
  /** Long-lived balancer, health and breaker state, attached by the sidecar before the plan goes live; null in a bare plan. */
  runtime: DestinationRuntime | null = null;

  constructor(
    readonly name: string,
    readonly namespace: string,
    /** SPIFFE ID the destination's sidecars must present. */
    readonly identity: string,
    readonly external: boolean,
    readonly ports: readonly PortTarget[],
    readonly endpoints: readonly EndpointTarget[],
    readonly hosts: readonly string[],
    /** Subsets by name: the labels an endpoint must carry to belong to each. */
    readonly subsets: ReadonlyMap<string, Readonly<Record<string, string>>> = new Map(),
  ) {
    this.all = new EndpointSet(endpoints);
  }

  /** The port a request addressed to `port` (or no port) uses: the exact one, else the only one, else 80, else the first. */
  portFor(port: number | undefined): PortTarget | undefined {
    const ports = this.ports;
    if (port !== undefined) return ports.find((p) => p.port === port);
    if (ports.length === 1) return ports[0];
    return ports.find((p) => p.port === 80) ?? ports[0];
  }

  /** An endpoint for a tunnel (TCP, CONNECT, upgrade): the balancer over healthy endpoints once the runtime is attached. */
  pickEndpoint(): EndpointTarget | undefined {
    const pool = this.runtime?.pool;
    return pool !== undefined ? pool.pick(undefined)?.endpoint : this.all.pick();
  }
}

/** Where a routed request goes: a service (or one subset of it) on one of its ports. */
export class BackendTarget {
  /** "reviews" or "reviews.v2" (subset), as logs and tap show it. */
  readonly name: string;
  constructor(
    readonly service: ServiceTarget,
    readonly subset: string | null,
    readonly port: PortTarget,
    readonly endpoints: EndpointSet,
  ) {
    this.name = subset === null ? service.name : `${service.name}.${subset}`;
  }

  pickEndpoint(): EndpointTarget | undefined {
    const pool = this.service.runtime?.poolFor(this.subset);
    return pool !== undefined ? pool.pick(undefined)?.endpoint : this.endpoints.pick();
  }
}
