// The service graph to draw, from what the control plane knows: services (resources and connected proxies), the
// measured caller -> callee edges (stats), and the edges the proxies' subscriptions imply before any traffic.

import type { EdgeStats, Golden, Proxy, ServiceStats, Stats } from './api.js';
import { health, type Health } from './format.js';

export interface GraphNode {
  id: string;
  name: string;
  namespace: string;
  /** Connected proxies (instances) of the service. */
  instances: number;
  stats: ServiceStats | null;
  health: Health;
  /** "unknown": callers from outside the mesh. */
  outside: boolean;
  /** Column in a left-to-right layout: the longest chain of callers in front of it. */
  depth: number;
}

export interface GraphEdge {
  id: string;
  source: string;
  target: string;
  stats: EdgeStats | null;
  health: Health;
}

export interface Graph {
  nodes: GraphNode[];
  edges: GraphEdge[];
}

export const OUTSIDE = 'unknown';

/** A subscription name (`reviews`, `reviews.default`, `reviews.default.svc:80`) -> the service it names. */
function subscribedService(name: string): string {
  return name.split(/[.:]/)[0] ?? name;
}

export function buildGraph(input: { services: Array<{ name: string; namespace: string }>; proxies: Proxy[]; stats: Stats | null }): Graph {
  const nodes = new Map<string, GraphNode>();
  const add = (name: string, namespace = 'default') => {
    let n = nodes.get(name);
    if (n === undefined) {
      n = { id: name, name, namespace, instances: 0, stats: null, health: 'idle', outside: name === OUTSIDE, depth: 0 };
      nodes.set(name, n);
    }
    return n;
  };
  for (const s of input.services) add(s.name, s.namespace);
  for (const p of input.proxies) if (p.connected) add(p.service, p.namespace).instances++;
  for (const s of input.stats?.services ?? []) {
    const n = add(s.service, s.namespace);
    n.stats = s;
    n.health = health(s.successRate, s.rps);
  }

  const edges = new Map<string, GraphEdge>();
  for (const e of input.stats?.edges ?? []) {
    add(e.source);
    add(e.destination);
    edges.set(`${e.source}->${e.destination}`, { id: `${e.source}->${e.destination}`, source: e.source, target: e.destination, stats: e, health: health(e.successRate, e.rps) });
  }
  // Who calls whom, as the proxies' subscriptions tell it: drawn (faintly) until traffic measures the edge.
  for (const p of input.proxies) {
    for (const sub of p.subscriptions) {
      const target = subscribedService(sub);
      if (!nodes.has(target) || target === p.service) continue;
      const id = `${p.service}->${target}`;
      if (!edges.has(id)) edges.set(id, { id, source: p.service, target, stats: null, health: 'idle' });
    }
  }
  const list = [...nodes.values()].sort((a, b) => a.name.localeCompare(b.name));
  const edgeList = [...edges.values()].sort((a, b) => a.id.localeCompare(b.id));
  assignDepths(list, edgeList);
  return { nodes: list, edges: edgeList };
}

/** Longest path from a node without callers, bounded by the node count so that a cycle cannot loop forever. */
function assignDepths(nodes: GraphNode[], edges: GraphEdge[]): void {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  for (let round = 0; round < nodes.length; round++) {
    let changed = false;
    for (const e of edges) {
      const s = byId.get(e.source);
      const t = byId.get(e.target);
      if (s === undefined || t === undefined || t.depth >= s.depth + 1) continue;
      if (s.depth + 1 >= nodes.length) continue;
      t.depth = s.depth + 1;
      changed = true;
    }
    if (!changed) break;
  }
}

/**
 * Totals for the header: the requests the services served, and the success rate as the callers saw it (the edges),
 * which also counts what the mesh refused before a request reached its service (faults, policy, no endpoint).
 */
export function meshTotals(stats: Stats | null): Golden | null {
  if (stats === null || stats.services.length === 0) return null;
  let rps = 0;
  let requests = 0;
  let p99: number | null = null;
  for (const s of stats.services) {
    rps += s.rps;
    requests += s.requests;
    if (s.p99Ms !== null) p99 = Math.max(p99 ?? 0, s.p99Ms);
  }
  const seen = stats.edges.length > 0 ? stats.edges : stats.services;
  let ok = 0;
  let measured = 0;
  for (const s of seen) {
    if (s.successRate === null) continue;
    ok += s.successRate * s.requests;
    measured += s.requests;
  }
  return { rps, requests, successRate: measured > 0 ? ok / measured : null, p50Ms: null, p95Ms: null, p99Ms: p99 };
}
