// Cross-checks of routes against the rest of a resource set: parents, backends, subsets, ports and Faults that exist,
// rules whose weights leave nothing to send to, and routes that claim identical matches on the same parent.

import { formatPath, type ConfigProblem, type LoadedResource, type SourcePosition } from './load.js';
import type { Service } from './resources.js';
import { compareRouteAge, type GRPCRoute, type HTTPRoute, type ParentReference, type Route, type TCPRoute } from './routes.js';

type Path = (string | number)[];

function isRoute(r: LoadedResource): r is LoadedResource & { resource: Route } {
  const k = r.resource.kind;
  return k === 'HTTPRoute' || k === 'GRPCRoute' || k === 'TCPRoute';
}

/** The ports of `svc` a parentRef takes over: all of them, or the one its port / sectionName names. */
function parentPorts(svc: Service, ref: ParentReference): number[] {
  return svc.spec.ports.filter((p) => (ref.port === undefined || p.port === ref.port) && (ref.sectionName === undefined || p.name === ref.sectionName)).map((p) => p.port);
}

/** One match of one rule, reduced to what decides which requests it takes (for conflict detection). */
function matchKeys(route: Route): { rule: number; match: number; key: string }[] {
  const out: { rule: number; match: number; key: string }[] = [];
  if (route.kind === 'TCPRoute') return [{ rule: 0, match: -1, key: 'tcp' }];
  route.spec.rules.forEach((rule, i) => {
    const matches: unknown[] = rule.matches && rule.matches.length > 0 ? rule.matches : [null];
    matches.forEach((m, j) => out.push({ rule: i, match: rule.matches && rule.matches.length > 0 ? j : -1, key: route.kind === 'HTTPRoute' ? httpMatchKey(m as HTTPRoute['spec']['rules'][number]['matches'][number] | null) : grpcMatchKey(m as GRPCMatch | null) }));
  });
  return out;
}

type GRPCMatch = NonNullable<GRPCRoute['spec']['rules'][number]['matches']>[number];

/** Only the first of several entries for one name counts (Gateway API), and order does not matter. */
function valueMatches(list: readonly { type: string; name: string; value: string }[] | undefined, foldCase: boolean): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const h of list ?? []) {
    const n = foldCase ? h.name.toLowerCase() : h.name;
    if (seen.has(n)) continue;
    seen.add(n);
    out.push(JSON.stringify([n, h.type, h.value]));
  }
  return out.sort();
}

function httpMatchKey(m: HTTPRoute['spec']['rules'][number]['matches'][number] | null): string {
  if (m === null) return JSON.stringify(['PathPrefix', '/']);
  return JSON.stringify([m.path.type, m.path.value, m.method ?? '', valueMatches(m.headers, true), valueMatches(m.queryParams, false)]);
}

function grpcMatchKey(m: GRPCMatch | null): string {
  if (m === null) return '[]';
  return JSON.stringify([m.method?.type ?? '', m.method?.service ?? '', m.method?.method ?? '', valueMatches(m.headers, true)]);
}

/**
 * Route problems of a resource set, each at the field it is about (file:line:column when the set came from files).
 * `partial`: the set is part of a larger one held elsewhere, so names it does not define are not reported.
 */
export function crossCheckRoutes(resources: readonly LoadedResource[], partial = false): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const services = new Map<string, Service>();
  /** Filter extension objects by kind/namespace/name. */
  const extensions = new Set<string>();
  for (const r of resources) {
    const res = r.resource;
    if (res.kind === 'Service') services.set(`${res.metadata.namespace}/${res.metadata.name}`, res);
    else if (res.kind === 'Fault' || res.kind === 'LocalRateLimit') extensions.add(`${res.kind}/${res.metadata.namespace}/${res.metadata.name}`);
  }
  const report = (r: LoadedResource, path: Path, message: string) => {
    const pos: SourcePosition = r.locate(path);
    problems.push({ ...pos, path: formatPath(path), message });
  };

  /** Checks one backend object reference; returns nothing, reports what is wrong. */
  const checkBackend = (r: LoadedResource, ns: string, ref: { kind: string; name: string; namespace?: string | undefined; port?: number | undefined }, at: Path) => {
    const namespace = ref.namespace ?? ns;
    let svcName = ref.name;
    let subset: string | undefined;
    if (ref.kind === 'ServiceSubset') [svcName, subset] = ref.name.split('.') as [string, string];
    const svc = services.get(`${namespace}/${svcName}`);
    if (svc === undefined) {
      if (!partial) report(r, [...at, 'name'], `unknown service "${namespace}/${svcName}": no Service of that name is defined`);
      return;
    }
    if (subset !== undefined && !(svc.spec.subsets ?? []).some((s) => s.name === subset)) {
      const known = (svc.spec.subsets ?? []).map((s) => s.name);
      report(r, [...at, 'name'], `service "${namespace}/${svcName}" has no subset "${subset}"${known.length > 0 ? ` (its subsets: ${known.join(', ')})` : ' (it declares no spec.subsets)'}`);
    }
    if (ref.port !== undefined && !svc.spec.ports.some((p) => p.port === ref.port)) {
      report(r, [...at, 'port'], `service "${namespace}/${svcName}" has no port ${ref.port} (its ports: ${svc.spec.ports.map((p) => p.port).join(', ')})`);
    }
  };

  const checkFilters = (r: LoadedResource, ns: string, filters: readonly { type: string; requestMirror?: { backendRef: Parameters<typeof checkBackend>[2] } | undefined; extensionRef?: { kind: string; name: string } | undefined }[] | undefined, at: Path) => {
    (filters ?? []).forEach((f, i) => {
      if (f.requestMirror !== undefined) checkBackend(r, ns, f.requestMirror.backendRef, [...at, i, 'requestMirror', 'backendRef']);
      const ext = f.extensionRef;
      if (ext !== undefined && !partial && !extensions.has(`${ext.kind}/${ns}/${ext.name}`)) {
        report(r, [...at, i, 'extensionRef', 'name'], `unknown ${ext.kind} "${ns}/${ext.name}": no ${ext.kind} of that name is defined in the route's namespace`);
      }
    });
  };

  // Every match of every route, by the parent port it applies to, to find routes that claim the same requests.
  const claims = new Map<string, { r: LoadedResource & { resource: Route }; at: Path; key: string }[]>();
  const routes = resources.filter(isRoute);
  routes.forEach((r) => {
    const route = r.resource;
    const ns = route.metadata.namespace;
    const parents = route.spec.parentRefs ?? [];
    if (parents.length === 0) report(r, ['spec'], `this ${route.kind} has no parentRefs, so it applies to no service; name the Service it routes for in spec.parentRefs`);
    const keys = matchKeys(route);
    const hosts = route.kind === 'TCPRoute' ? '' : JSON.stringify([...(route.spec.hostnames ?? [])].sort());
    parents.forEach((p, i) => {
      const key = `${p.namespace ?? ns}/${p.name}`;
      const svc = services.get(key);
      if (svc === undefined) {
        if (!partial) report(r, ['spec', 'parentRefs', i, 'name'], `unknown service "${key}": no Service of that name is defined`);
        return;
      }
      const ports = parentPorts(svc, p);
      if (ports.length === 0) {
        report(r, ['spec', 'parentRefs', i, p.sectionName !== undefined ? 'sectionName' : 'port'], `service "${key}" has no port ${p.sectionName !== undefined ? `named "${p.sectionName}"` : p.port}${p.port !== undefined && p.sectionName !== undefined ? ` that is port ${p.port}` : ''}`);
        return;
      }
      for (const port of ports) {
        for (const k of keys) {
          const claimKey = `${route.kind === 'TCPRoute' ? 'tcp' : route.kind}|${key}:${port}|${hosts}|${k.key}`;
          const at: Path = k.match >= 0 ? ['spec', 'rules', k.rule, 'matches', k.match] : route.kind === 'TCPRoute' ? ['spec', 'parentRefs', i] : ['spec', 'rules', k.rule];
          let list = claims.get(claimKey);
          if (list === undefined) claims.set(claimKey, (list = []));
          if (!list.some((c) => c.r === r)) list.push({ r, at, key: `${key}:${port}` });
        }
      }
    });
    if (route.kind === 'TCPRoute') checkTcpRules(r as LoadedResource & { resource: TCPRoute });
    else checkRules(r as LoadedResource & { resource: HTTPRoute | GRPCRoute });
  });

  function checkRules(r: LoadedResource & { resource: HTTPRoute | GRPCRoute }): void {
    const ns = r.resource.metadata.namespace;
    r.resource.spec.rules.forEach((rule, i) => {
      const at: Path = ['spec', 'rules', i];
      checkFilters(r, ns, rule.filters, [...at, 'filters']);
      const backends = rule.backendRefs ?? [];
      backends.forEach((b, j) => {
        checkBackend(r, ns, b, [...at, 'backendRefs', j]);
        checkFilters(r, ns, b.filters, [...at, 'backendRefs', j, 'filters']);
      });
      if (backends.length > 0 && backends.every((b) => b.weight === 0)) {
        report(r, [...at, 'backendRefs'], 'the weights of this rule\'s backendRefs add up to 0, so no request could be sent anywhere; give at least one backend a weight above 0');
      }
    });
  }

  function checkTcpRules(r: LoadedResource & { resource: TCPRoute }): void {
    const ns = r.resource.metadata.namespace;
    r.resource.spec.rules.forEach((rule, i) => {
      rule.backendRefs.forEach((b, j) => checkBackend(r, ns, b, ['spec', 'rules', i, 'backendRefs', j]));
      if (rule.backendRefs.every((b) => b.weight === 0)) report(r, ['spec', 'rules', i, 'backendRefs'], 'the weights of this rule\'s backendRefs add up to 0, so no connection could be sent anywhere');
    });
  }

  for (const list of claims.values()) {
    if (list.length < 2) continue;
    // The route that wins by precedence (oldest, then namespace/name) keeps the match; every other one is reported.
    const sorted = [...list].sort((a, b) => compareRouteAge(a.r.resource.metadata, b.r.resource.metadata));
    const winner = sorted[0]!;
    const w = winner.r.resource;
    const where = winner.r.locate(winner.at);
    for (const loser of sorted.slice(1)) {
      report(loser.r, loser.at, `conflicts with ${w.kind} ${w.metadata.namespace}/${w.metadata.name} (${where.file}:${where.line}:${where.column}): both route ${loser.key} ${loser.r.resource.kind === 'TCPRoute' ? 'connections' : 'requests with identical matches'}, and that route takes precedence, so this one would never be used`);
    }
  }
  return problems;
}
