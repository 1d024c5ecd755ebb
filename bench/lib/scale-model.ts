// The simulated mesh of the control-plane scale benchmark: ~50 services, N proxies that each call a few of them
// (popular ones more often), a "rare" service called by a handful of proxies, and a share that registers an endpoint.
// Pure and seeded, so a given size always draws the same mesh (tested in scale-model.test.ts).

import { seededRandom } from '../../test/helpers/seeded-random.js';

export const SERVICE_COUNT = 50;
/** Declared (external, static endpoint), run by no proxy, called by `rareCallers` only. */
export const RARE_SERVICE = 'rare-ledger';

export interface SimEndpoint {
  address: string;
  port: number;
  labels: Record<string, string>;
  appPort: number;
}

export interface SimProxySpec {
  /** Index of the proxy in the whole simulated mesh (0..N-1). */
  gid: number;
  proxyId: string;
  service: string;
  /** Host names the proxy calls (sorted): its hello's `subscribe`. */
  subscribe: string[];
  endpoint?: SimEndpoint;
}

export interface MeshModel {
  services: string[];
  proxies: SimProxySpec[];
  /** gids of the proxies that call RARE_SERVICE. */
  rareCallers: number[];
  endpoints: number;
  /** Distinct (service, subscriptions) pairs: the control plane computes one view per pair. */
  distinctViews: number;
}

export interface ModelOptions {
  /** Share of proxies that register an endpoint (the rest are client-only). */
  endpointShare: number;
  /** Share of proxies that call the rare service (at least 2). */
  rareShare: number;
  /** Each proxy calls between minCallees and maxCallees services. */
  minCallees: number;
  maxCallees: number;
  seed: number;
}

export const DEFAULT_MODEL: ModelOptions = { endpointShare: 0.1, rareShare: 0.005, minCallees: 2, maxCallees: 4, seed: 42 };

export function serviceName(i: number): string {
  return `svc-${String(i).padStart(2, '0')}`;
}

function endpointOf(gid: number): SimEndpoint {
  return {
    address: `10.${(gid >> 16) & 255}.${(gid >> 8) & 255}.${gid & 255}`,
    port: 15006,
    labels: { version: 'v1', zone: `zone-${gid % 3}` },
    appPort: 8080,
  };
}

export function buildModel(n: number, o: ModelOptions = DEFAULT_MODEL): MeshModel {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`mesh size must be a positive integer, got ${n}`);
  const rand = seededRandom(o.seed);
  const services = Array.from({ length: SERVICE_COUNT }, (_, i) => serviceName(i));
  // Zipf-like popularity: the k-th service is called about 1/(k+1) as often as the first.
  const cumulative: number[] = [];
  let total = 0;
  for (let k = 0; k < SERVICE_COUNT; k++) cumulative.push((total += 1 / (k + 1)));
  const draw = (): number => {
    const x = rand() * total;
    let k = 0;
    while (k < SERVICE_COUNT - 1 && (cumulative[k] as number) < x) k++;
    return k;
  };

  const proxies: SimProxySpec[] = [];
  let endpoints = 0;
  for (let gid = 0; gid < n; gid++) {
    const own = gid % SERVICE_COUNT;
    const want = o.minCallees + Math.floor(rand() * (o.maxCallees - o.minCallees + 1));
    const callees = new Set<string>();
    for (let tries = 0; callees.size < want && tries < 100; tries++) {
      const k = draw();
      if (k !== own) callees.add(serviceName(k));
    }
    const p: SimProxySpec = { gid, proxyId: `sim-${n}-${gid}`, service: serviceName(own), subscribe: [...callees] };
    if (rand() < o.endpointShare) {
      p.endpoint = endpointOf(gid);
      endpoints++;
    }
    proxies.push(p);
  }

  // Callers of the rare service spread evenly over the mesh (so over the workers too).
  const rareCount = Math.min(n, Math.max(2, Math.round(n * o.rareShare)));
  const rareCallers: number[] = [];
  for (let k = 0; k < rareCount; k++) {
    const gid = Math.floor(((k + 0.5) * n) / rareCount);
    rareCallers.push(gid);
    (proxies[gid] as SimProxySpec).subscribe.push(RARE_SERVICE);
  }
  for (const p of proxies) p.subscribe.sort();
  const distinctViews = new Set(proxies.map((p) => `${p.service}|${p.subscribe.join(',')}`)).size;
  return { services, proxies, rareCallers, endpoints, distinctViews };
}

/** The resources the benchmark applies before any proxy connects: the mesh settings, every service, the rare one. */
export function baseResources(services: readonly string[], idleTimeout: string, rarePort: number): unknown[] {
  return [
    meshConfig(idleTimeout),
    ...services.map((name) => ({
      apiVersion: 'mycel.dev/v1alpha1',
      kind: 'Service',
      metadata: { name },
      spec: { ports: [{ port: 8080, appProtocol: 'http' }] },
    })),
    rareService(rarePort),
  ];
}

/** A change that reaches every proxy: every view carries the MeshConfig. */
export function meshConfig(idleTimeout: string): unknown {
  return { apiVersion: 'mycel.dev/v1alpha1', kind: 'MeshConfig', metadata: { name: 'mesh' }, spec: { trustDomain: 'mycel.local', timeouts: { idle: idleTimeout } } };
}

/** A change that concerns only the rare service's callers: its external endpoint moves to another port. */
export function rareService(port: number): unknown {
  return {
    apiVersion: 'mycel.dev/v1alpha1',
    kind: 'Service',
    metadata: { name: RARE_SERVICE },
    spec: { ports: [{ port: 5432, appProtocol: 'tcp' }], external: true, endpoints: [{ address: '192.0.2.10', port }] },
  };
}
