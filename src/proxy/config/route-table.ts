// Compiles HTTPRoute, GRPCRoute and TCPRoute resources into route tables on their parent services, one per port:
// sorted match candidates, each rule's filters as ready-to-run steps, and weighted backends resolved to service or
// subset endpoints. Runs once per config change; the request path only reads what is built here.

import type { Fault, GRPCRoute, HTTPRoute, HTTPRouteFilter, GRPCRouteFilter, LocalRateLimit, Route, TCPRoute, BackendObjectReference } from '../../api/v1alpha1/routes.js';
import { RateLimiter } from '../layers/rate-limit/index.js';
import { compareRouteAge, gatewayDurationMs } from '../../api/v1alpha1/routes.js';
import type { Resource } from '../../api/v1alpha1/resources.js';
import { parseDuration } from '../../api/v1alpha1/duration.js';
import { HeaderModifier } from '../stack/header-modifier.js';
import { BackendTarget, EndpointSet, type PortTarget, type ServiceTarget } from './targets.js';
import { compareGrpc, compareHttp, GrpcMatch, hostMatcher, HttpMatch, RouteCandidates, type GrpcCandidate, type HostMatcher, type HttpCandidate } from './route-match.js';

/** ReplaceFullPath (`full`) or ReplacePrefixMatch (`prefix` replaces `matched`, the rule's PathPrefix without trailing "/"). */
export interface PathRewrite {
  readonly full: string | null;
  readonly prefix: string | null;
  readonly matched: string;
}

export interface RedirectSpec {
  readonly scheme: 'http' | 'https' | null;
  readonly hostname: string | null;
  readonly port: number | null;
  readonly statusCode: number;
  readonly path: PathRewrite | null;
}

/** A request filter, compiled; the logical stage runs a rule's steps in order. */
export type RequestStep =
  | { readonly type: 'headers'; readonly modifier: HeaderModifier }
  | { readonly type: 'rewrite'; readonly hostname: string | null; readonly path: PathRewrite | null }
  | { readonly type: 'redirect'; readonly redirect: RedirectSpec }
  | { readonly type: 'mirror'; readonly target: BackendTarget | null; readonly numerator: number; readonly denominator: number }
  /** A Fault's delay and its abort are two steps, so that a delayed request can still be aborted afterwards. */
  | { readonly type: 'delay'; readonly fault: string; readonly ms: number; readonly percent: number }
  | { readonly type: 'abort'; readonly fault: string; readonly http: number | null; readonly grpc: number | null; readonly percent: number }
  /** A LocalRateLimit: one token bucket per rule and calling sidecar (a new config starts it afresh). */
  | { readonly type: 'rate-limit'; readonly name: string; readonly limiter: RateLimiter; readonly ratePerSecond: number }
  /** A filter that refers to something missing: Gateway API says such a filter must fail the request, never be skipped. */
  | { readonly type: 'invalid'; readonly reason: string };

export interface RouteBackend {
  /** null: the backendRef names nothing that exists (the request fails with route-invalid and this reason). */
  readonly target: BackendTarget | null;
  readonly invalid: string | null;
  readonly weight: number;
  /** The backendRef's own filters, run after the rule's. */
  readonly steps: readonly RequestStep[];
  /** ResponseHeaderModifiers of the rule and of this backendRef, in that order; null when none. */
  readonly responseModifiers: readonly HeaderModifier[] | null;
}

/** Backends of a rule with their weights; `pick` draws one in proportion to its weight. */
export class WeightedBackends {
  private readonly cumulative: readonly number[];
  readonly total: number;

  constructor(readonly backends: readonly RouteBackend[]) {
    let sum = 0;
    this.cumulative = backends.map((b) => (sum += b.weight));
    this.total = sum;
  }

  /** `r` is uniform in [0, 1); null when every weight is 0. */
  pick(r: number): RouteBackend | null {
    if (this.total <= 0) return null;
    const x = r * this.total;
    const c = this.cumulative;
    for (let i = 0; i < c.length; i++) if (x < (c[i] as number)) return this.backends[i] as RouteBackend;
    return this.backends[this.backends.length - 1] as RouteBackend;
  }
}

export interface CompiledRule {
  /** "namespace/name" of the route: the `route` label of the request metrics. */
  readonly route: string;
  readonly kind: 'HTTPRoute' | 'GRPCRoute';
  readonly ruleIndex: number;
  readonly steps: readonly RequestStep[];
  readonly backends: WeightedBackends;
  /** 0: no limit. */
  readonly requestTimeoutMs: number;
  readonly backendTimeoutMs: number;
}

/** What the routes attached to one port of a service decide. */
export interface PortRoutes {
  /** HTTP and gRPC candidates; null when no HTTPRoute or GRPCRoute takes this port. */
  readonly candidates: RouteCandidates<CompiledRule> | null;
  /** The TCPRoute of this port (the oldest if several claim it). */
  readonly tcp: { readonly route: string; readonly backends: WeightedBackends } | null;
}

interface Attached {
  route: Route;
  rank: number;
}

type Services = ReadonlyMap<string, ServiceTarget>;

/** Builds the route tables and stores them on the parent services (`ServiceTarget.routes`). */
export function compileRoutes(resources: readonly Resource[], services: Services, selfNamespace: string): void {
  const faults = new Map<string, Fault>();
  const rateLimits = new Map<string, LocalRateLimit>();
  const routes: Route[] = [];
  for (const r of resources) {
    if (r.kind === 'Fault') faults.set(`${r.metadata.namespace}/${r.metadata.name}`, r);
    else if (r.kind === 'LocalRateLimit') rateLimits.set(`${r.metadata.namespace}/${r.metadata.name}`, r);
    else if (r.kind === 'HTTPRoute' || r.kind === 'GRPCRoute' || r.kind === 'TCPRoute') routes.push(r);
  }
  if (routes.length === 0) return;
  const ranked = [...routes].sort((a, b) => compareRouteAge(a.metadata, b.metadata));
  const rankOf = new Map(ranked.map((r, i) => [r, i]));

  // Parent service -> port -> routes attached there.
  const byParent = new Map<ServiceTarget, Map<number, Attached[]>>();
  for (const route of routes) {
    for (const ref of route.spec.parentRefs ?? []) {
      const svc = services.get(`${ref.name}.${ref.namespace ?? route.metadata.namespace}`);
      if (svc === undefined) continue;
      let ports = byParent.get(svc);
      if (ports === undefined) byParent.set(svc, (ports = new Map()));
      for (const p of svc.ports) {
        if (ref.port !== undefined && p.port !== ref.port) continue;
        if (ref.sectionName !== undefined && p.name !== ref.sectionName) continue;
        let list = ports.get(p.port);
        if (list === undefined) ports.set(p.port, (list = []));
        if (!list.some((a) => a.route === route)) list.push({ route, rank: rankOf.get(route) as number });
      }
    }
  }

  const backends = new BackendCache(services);
  for (const [svc, ports] of byParent) {
    const tables = new Map<number, PortRoutes>();
    for (const [portNumber, attachedAll] of ports) {
      const attached = scopeToCaller(attachedAll, svc.namespace, selfNamespace);
      const parentPort = svc.portFor(portNumber) as PortTarget;
      const ctx: RuleContext = { parent: svc, parentPort, faults, rateLimits, backends };
      const http: HttpCandidate<CompiledRule>[] = [];
      const grpc: GrpcCandidate<CompiledRule>[] = [];
      let tcp: PortRoutes['tcp'] = null;
      for (const a of [...attached].sort((x, y) => x.rank - y.rank)) {
        if (a.route.kind === 'HTTPRoute') addHttp(a.route, a.rank, ctx, http);
        else if (a.route.kind === 'GRPCRoute') addGrpc(a.route, a.rank, ctx, grpc);
        else if (tcp === null) tcp = compileTcp(a.route, ctx);
      }
      http.sort(compareHttp);
      grpc.sort(compareGrpc);
      tables.set(portNumber, { candidates: http.length + grpc.length > 0 ? new RouteCandidates(http, grpc) : null, tcp });
    }
    svc.routes = tables;
  }
}

/**
 * GAMMA: a route in the parent's namespace (producer route) applies to every caller; a route in the caller's own
 * namespace (consumer route) applies only to callers there, and replaces the producer routes for them.
 */
function scopeToCaller(attached: readonly Attached[], parentNs: string, selfNs: string): Attached[] {
  if (selfNs !== parentNs && attached.some((a) => a.route.metadata.namespace === selfNs)) return attached.filter((a) => a.route.metadata.namespace === selfNs);
  return attached.filter((a) => a.route.metadata.namespace === parentNs);
}

interface RuleContext {
  parent: ServiceTarget;
  parentPort: PortTarget;
  faults: ReadonlyMap<string, Fault>;
  rateLimits: ReadonlyMap<string, LocalRateLimit>;
  backends: BackendCache;
}

/** Resolves backend references to shared targets, so that a subset used by several rules has one endpoint rotation. */
class BackendCache {
  private readonly targets = new Map<string, BackendTarget>();
  private readonly sets = new Map<string, EndpointSet>();

  constructor(private readonly services: Services) {}

  /** The target of a backendRef, or the reason it has none. */
  resolve(ref: BackendObjectReference, routeNs: string, parentPort: PortTarget): BackendTarget | string {
    const ns = ref.namespace ?? routeNs;
    let name = ref.name;
    let subset: string | null = null;
    if (ref.kind === 'ServiceSubset') {
      const dot = name.indexOf('.');
      subset = name.slice(dot + 1);
      name = name.slice(0, dot);
    }
    const svc = this.services.get(`${name}.${ns}`);
    if (svc === undefined) return `backend service ${ns}/${name} is not known to this proxy`;
    return this.target(svc, subset, ref.port, parentPort);
  }

  target(svc: ServiceTarget, subset: string | null, port: number | undefined, parentPort: PortTarget): BackendTarget | string {
    // No port named: the port the request came on if the backend has it, else the backend's only (or first) port.
    const p = port !== undefined ? svc.portFor(port) : (svc.portFor(parentPort.port) ?? svc.portFor(undefined));
    if (p === undefined) return `backend service ${svc.namespace}/${svc.name} has no port ${port ?? ''}`.trim();
    const key = `${svc.namespace}/${svc.name}|${subset ?? ''}|${p.port}`;
    let t = this.targets.get(key);
    if (t !== undefined) return t;
    let endpoints: EndpointSet;
    if (subset === null) endpoints = svc.all;
    else {
      const labels = svc.subsets.get(subset);
      if (labels === undefined) return `service ${svc.namespace}/${svc.name} has no subset "${subset}"`;
      const setKey = `${svc.namespace}/${svc.name}|${subset}`;
      let set = this.sets.get(setKey);
      if (set === undefined) {
        set = new EndpointSet(svc.endpoints.filter((e) => Object.entries(labels).every(([k, v]) => e.labels[k] === v)));
        this.sets.set(setKey, set);
      }
      endpoints = set;
    }
    t = new BackendTarget(svc, subset, p, endpoints);
    this.targets.set(key, t);
    return t;
  }
}

function pathRewrite(path: { type: string; replaceFullPath?: string | undefined; replacePrefixMatch?: string | undefined } | undefined, matched: string): PathRewrite | null {
  if (path === undefined) return null;
  if (path.type === 'ReplaceFullPath') return { full: path.replaceFullPath ?? '/', prefix: null, matched };
  return { full: null, prefix: (path.replacePrefixMatch ?? '').replace(/\/+$/, ''), matched };
}

function faultSteps(f: Fault): RequestStep[] {
  const name = `${f.metadata.namespace}/${f.metadata.name}`;
  const steps: RequestStep[] = [];
  const d = f.spec.delay;
  if (d !== undefined) steps.push({ type: 'delay', fault: name, ms: parseDuration(d.fixedDelay) ?? 0, percent: d.percentage });
  const a = f.spec.abort;
  if (a !== undefined) steps.push({ type: 'abort', fault: name, http: a.httpStatus ?? null, grpc: a.grpcStatus ?? null, percent: a.percentage });
  return steps;
}

const UNIT_SECONDS = { second: 1, minute: 60, hour: 3600 } as const;

function rateLimitStep(name: string, rl: LocalRateLimit): RequestStep {
  const ratePerSecond = rl.spec.requestsPerUnit / UNIT_SECONDS[rl.spec.unit];
  return { type: 'rate-limit', name, ratePerSecond, limiter: new RateLimiter({ ratePerSecond, burst: rl.spec.burst ?? rl.spec.requestsPerUnit, maxKeys: 1 }) };
}

/** Compiles a filter list into request steps, collecting ResponseHeaderModifiers into `response`. */
function compileSteps(filters: readonly (HTTPRouteFilter | GRPCRouteFilter)[] | undefined, routeNs: string, matched: string, ctx: RuleContext, response: HeaderModifier[]): RequestStep[] {
  const steps: RequestStep[] = [];
  for (const f of filters ?? []) {
    switch (f.type) {
      case 'RequestHeaderModifier':
        steps.push({ type: 'headers', modifier: new HeaderModifier(f.requestHeaderModifier ?? {}) });
        break;
      case 'ResponseHeaderModifier':
        response.push(new HeaderModifier(f.responseHeaderModifier ?? {}));
        break;
      case 'URLRewrite': {
        const u = (f as HTTPRouteFilter).urlRewrite;
        steps.push({ type: 'rewrite', hostname: u?.hostname ?? null, path: pathRewrite(u?.path, matched) });
        break;
      }
      case 'RequestRedirect': {
        const r = (f as HTTPRouteFilter).requestRedirect;
        steps.push({ type: 'redirect', redirect: { scheme: r?.scheme ?? null, hostname: r?.hostname ?? null, port: r?.port ?? null, statusCode: r?.statusCode ?? 302, path: pathRewrite(r?.path, matched) } });
        break;
      }
      case 'RequestMirror': {
        const m = f.requestMirror;
        if (m === undefined) break;
        const t = ctx.backends.resolve(m.backendRef, routeNs, ctx.parentPort);
        // A mirror to nothing mirrors nothing: it must never affect the request itself.
        const [numerator, denominator] = m.fraction !== undefined ? [m.fraction.numerator, m.fraction.denominator] : [m.percent ?? 100, 100];
        steps.push({ type: 'mirror', target: typeof t === 'string' ? null : t, numerator, denominator });
        break;
      }
      case 'ExtensionRef': {
        const name = `${routeNs}/${f.extensionRef?.name ?? ''}`;
        if (f.extensionRef?.kind === 'LocalRateLimit') {
          const rl = ctx.rateLimits.get(name);
          if (rl === undefined) steps.push({ type: 'invalid', reason: `LocalRateLimit ${name} is not known to this proxy` });
          else steps.push(rateLimitStep(name, rl));
          break;
        }
        const fault = ctx.faults.get(name);
        if (fault === undefined) steps.push({ type: 'invalid', reason: `Fault ${name} is not known to this proxy` });
        else steps.push(...faultSteps(fault));
        break;
      }
    }
  }
  return steps;
}

type AnyBackendRef = BackendObjectReference & { weight: number; filters?: readonly (HTTPRouteFilter | GRPCRouteFilter)[] | undefined };

function compileBackends(refs: readonly AnyBackendRef[] | undefined, routeNs: string, matched: string, ruleResponse: readonly HeaderModifier[], ctx: RuleContext): WeightedBackends {
  if (refs === undefined || refs.length === 0) {
    // GAMMA: a rule without backendRefs sends to the parent service itself.
    const t = ctx.backends.target(ctx.parent, null, ctx.parentPort.port, ctx.parentPort) as BackendTarget;
    return new WeightedBackends([{ target: t, invalid: null, weight: 1, steps: [], responseModifiers: ruleResponse.length > 0 ? ruleResponse : null }]);
  }
  return new WeightedBackends(
    refs.map((ref) => {
      const own: HeaderModifier[] = [];
      const steps = compileSteps(ref.filters, routeNs, matched, ctx, own);
      const mods = [...ruleResponse, ...own];
      const t = ctx.backends.resolve(ref, routeNs, ctx.parentPort);
      return { target: typeof t === 'string' ? null : t, invalid: typeof t === 'string' ? t : null, weight: ref.weight, steps, responseModifiers: mods.length > 0 ? mods : null };
    }),
  );
}

function routeKey(route: Route): string {
  return `${route.metadata.namespace}/${route.metadata.name}`;
}

function hostsOf(route: HTTPRoute | GRPCRoute): (HostMatcher | null)[] {
  const h = route.spec.hostnames ?? [];
  return h.length === 0 ? [null] : h.map(hostMatcher);
}

function addHttp(route: HTTPRoute, rank: number, ctx: RuleContext, out: HttpCandidate<CompiledRule>[]): void {
  const ns = route.metadata.namespace;
  const hosts = hostsOf(route);
  route.spec.rules.forEach((r, ruleIndex) => {
    const matches = r.matches.length > 0 ? r.matches : [{ path: { type: 'PathPrefix' as const, value: '/' } }];
    // ReplacePrefixMatch is only allowed with a single PathPrefix match (checked by the schema): that is the prefix.
    const first = matches[0]!.path;
    const matched = first.type === 'PathPrefix' ? first.value.replace(/\/+$/, '') : '';
    const response: HeaderModifier[] = [];
    const steps = compileSteps(r.filters, ns, matched, ctx, response);
    const t = r.timeouts;
    const rule: CompiledRule = {
      route: routeKey(route),
      kind: 'HTTPRoute',
      ruleIndex,
      steps,
      backends: compileBackends(r.backendRefs, ns, matched, response, ctx),
      requestTimeoutMs: t?.request !== undefined ? gatewayDurationMs(t.request) : 0,
      backendTimeoutMs: t?.backendRequest !== undefined ? gatewayDurationMs(t.backendRequest) : 0,
    };
    matches.forEach((m, matchIndex) => {
      const match = new HttpMatch(m);
      for (const host of hosts) out.push({ host, match, rule, routeRank: rank, ruleIndex, matchIndex });
    });
  });
}

function addGrpc(route: GRPCRoute, rank: number, ctx: RuleContext, out: GrpcCandidate<CompiledRule>[]): void {
  const ns = route.metadata.namespace;
  const hosts = hostsOf(route);
  route.spec.rules.forEach((r, ruleIndex) => {
    const response: HeaderModifier[] = [];
    const steps = compileSteps(r.filters, ns, '', ctx, response);
    const rule: CompiledRule = { route: routeKey(route), kind: 'GRPCRoute', ruleIndex, steps, backends: compileBackends(r.backendRefs, ns, '', response, ctx), requestTimeoutMs: 0, backendTimeoutMs: 0 };
    const matches = r.matches !== undefined && r.matches.length > 0 ? r.matches : [null];
    matches.forEach((m, matchIndex) => {
      const match = new GrpcMatch(m);
      for (const host of hosts) out.push({ host, match, rule, routeRank: rank, ruleIndex, matchIndex });
    });
  });
}

function compileTcp(route: TCPRoute, ctx: RuleContext): PortRoutes['tcp'] {
  const rule = route.spec.rules[0];
  if (rule === undefined) return null;
  return { route: routeKey(route), backends: compileBackends(rule.backendRefs, route.metadata.namespace, '', [], ctx) };
}
