// The control plane's in-memory index of the store: services by host, their registered endpoints, and the routes and
// policies that hang off each service. Kept up to date from store events; says which services each change touches.

import type { StoredObject, StoreEvent } from '../store/store.js';

/** What the registry stores per endpoint (kind `Endpoint`, namespace of the service, name = proxy id). */
export interface EndpointRecord {
  service: string;
  namespace: string;
  address: string;
  port: number;
  labels: Record<string, string>;
  ready: boolean;
  /** The app's own port, so that a service nobody declared still gets a usable Service (see synthesizedService). */
  appPort?: number;
  proxyId: string;
  /** The control-plane replica the proxy registered through. */
  replica: string;
}

/** Services touched by a batch of changes; `global` means every view may have changed. */
export interface Changes {
  services: Set<string>;
  global: boolean;
  /** A service appeared, disappeared or changed its host names: name resolution must be redone. */
  hosts: boolean;
}

export const ROUTE_KINDS = new Set(['HTTPRoute', 'GRPCRoute', 'TCPRoute']);
const SERVICE_TARGETED = new Set(['TrafficPolicy', 'AuthorizationPolicy', 'PeerAuthentication']);

export function serviceKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

interface ServiceEntry {
  resource: StoredObject | undefined;
  endpoints: Map<string, EndpointRecord>;
  /** The service as views carry it (built by translate), shared by every view until the service or its endpoints change. */
  forViews: { value: unknown } | undefined;
}

type Json = Record<string, unknown>;
const asObj = (x: unknown): Json => (typeof x === 'object' && x !== null && !Array.isArray(x) ? (x as Json) : {});
const asArr = (x: unknown): unknown[] => (Array.isArray(x) ? x : []);

/** Services a route hangs off (its parentRefs that name a Service). */
export function routeParents(route: StoredObject): string[] {
  const spec = asObj(asObj(route.value).spec);
  const out: string[] = [];
  for (const p of asArr(spec.parentRefs)) {
    const ref = asObj(p);
    if (ref.kind !== undefined && ref.kind !== 'Service') continue;
    if (typeof ref.name === 'string') out.push(serviceKey(typeof ref.namespace === 'string' ? ref.namespace : route.namespace, ref.name));
  }
  return out;
}

/** The service a backendRef names: a Service, or the service of a ServiceSubset (`name: <service>.<subset>`). */
function backendKey(ref: Json, routeNamespace: string): string {
  const name = ref.name as string;
  const dot = name.indexOf('.');
  const svc = ref.kind === 'ServiceSubset' && dot > 0 ? name.slice(0, dot) : name;
  return serviceKey(typeof ref.namespace === 'string' ? ref.namespace : routeNamespace, svc);
}

/** Services a route sends to (backendRefs and mirror targets) and the Mycel extension objects its filters name. */
export function routeReferences(route: StoredObject): { services: string[]; extensions: string[] } {
  const spec = asObj(asObj(route.value).spec);
  const services = new Set<string>();
  const extensions = new Set<string>();
  const visitFilters = (filters: unknown) => {
    for (const f of asArr(filters)) {
      const filter = asObj(f);
      const mirror = asObj(asObj(filter.requestMirror).backendRef);
      if (typeof mirror.name === 'string') services.add(backendKey(mirror, route.namespace));
      const ext = asObj(filter.extensionRef);
      if (typeof ext.name === 'string' && typeof ext.kind === 'string') extensions.add(`${ext.kind}/${route.namespace}/${ext.name}`);
    }
  };
  for (const r of asArr(spec.rules)) {
    const rule = asObj(r);
    visitFilters(rule.filters);
    for (const b of asArr(rule.backendRefs)) {
      const ref = asObj(b);
      if (typeof ref.name === 'string') services.add(backendKey(ref, route.namespace));
      visitFilters(ref.filters);
    }
  }
  return { services: [...services], extensions: [...extensions] };
}

/** The service a policy targets, or undefined for a mesh-wide one. */
export function policyTarget(policy: StoredObject): string | undefined {
  const ref = asObj(asObj(asObj(policy.value).spec).targetRef);
  return typeof ref.name === 'string' ? serviceKey(policy.namespace, ref.name) : undefined;
}

export function hostsOf(svc: StoredObject): string[] {
  const { name, namespace } = svc;
  const extra = asArr(asObj(asObj(svc.value).spec).hosts).filter((h): h is string => typeof h === 'string').map((h) => h.toLowerCase());
  return [name, `${name}.${namespace}`, `${name}.${namespace}.svc`, `${name}.${namespace}.svc.cluster.local`, ...extra];
}

function sameHosts(a: StoredObject, b: StoredObject): boolean {
  const x = hostsOf(a);
  const y = hostsOf(b);
  return x.length === y.length && x.every((h, i) => h === y[i]);
}

export class MeshIndex {
  private readonly services = new Map<string, ServiceEntry>();
  /** Routes by the service they hang off. */
  private readonly routesByParent = new Map<string, Map<string, StoredObject>>();
  /** TrafficPolicy / AuthorizationPolicy / PeerAuthentication by target service; mesh-wide ones under ''. */
  private readonly policiesByTarget = new Map<string, Map<string, StoredObject>>();
  /** Everything else (MeshConfig, Fault, ...) by kind/namespace/name, plus every object for old-value lookups. */
  private readonly objects = new Map<string, StoredObject>();
  private byHost = new Map<string, string>();
  private hostsDirty = true;
  private mesh: StoredObject | undefined;

  constructor(private readonly internalKinds: ReadonlySet<string> = new Set()) {}

  /** Loads a full listing (at open). */
  load(objects: readonly StoredObject[]): void {
    this.apply(objects.map((object) => ({ type: 'put', object }) as StoreEvent));
  }

  apply(events: readonly StoreEvent[]): Changes {
    const changes: Changes = { services: new Set(), global: false, hosts: false };
    for (const e of events) {
      const kind = e.type === 'put' ? e.object.kind : e.kind;
      const namespace = e.type === 'put' ? e.object.namespace : e.namespace;
      const name = e.type === 'put' ? e.object.name : e.name;
      if (this.internalKinds.has(kind)) continue;
      const key = `${kind}/${namespace}/${name}`;
      const old = this.objects.get(key);
      const hostsBefore = changes.hosts;
      if (old !== undefined) this.remove(old, changes);
      if (e.type === 'put') {
        this.objects.set(key, e.object);
        this.add(e.object, changes);
        // A Service changed in place under the same host names resolves as before: only its own dependants change,
        // not every view (which re-resolving the names would force).
        if (!hostsBefore && old?.kind === 'Service' && sameHosts(old, e.object)) changes.hosts = false;
      } else {
        this.objects.delete(key);
      }
    }
    if (changes.hosts) this.hostsDirty = true;
    return changes;
  }

  private entry(svcKey: string): ServiceEntry {
    let e = this.services.get(svcKey);
    if (e === undefined) {
      e = { resource: undefined, endpoints: new Map(), forViews: undefined };
      this.services.set(svcKey, e);
    }
    return e;
  }

  private add(o: StoredObject, changes: Changes): void {
    const key = `${o.kind}/${o.namespace}/${o.name}`;
    switch (o.kind) {
      case 'Service': {
        const k = serviceKey(o.namespace, o.name);
        const entry = this.entry(k);
        entry.resource = o;
        entry.forViews = undefined;
        changes.services.add(k);
        changes.hosts = true;
        return;
      }
      case 'Endpoint': {
        const rec = o.value as EndpointRecord;
        const k = serviceKey(o.namespace, rec.service);
        const entry = this.entry(k);
        if (entry.resource === undefined && entry.endpoints.size === 0) changes.hosts = true; // a synthesized service appears
        entry.endpoints.set(o.name, rec);
        entry.forViews = undefined;
        changes.services.add(k);
        return;
      }
      case 'MeshConfig':
        this.mesh = o;
        changes.global = true;
        return;
    }
    if (!this.link(o, key, o, changes)) this.extensionChanged(o, changes);
  }

  private remove(o: StoredObject, changes: Changes): void {
    const key = `${o.kind}/${o.namespace}/${o.name}`;
    switch (o.kind) {
      case 'Service': {
        const k = serviceKey(o.namespace, o.name);
        const e = this.services.get(k);
        if (e !== undefined) {
          e.resource = undefined;
          e.forViews = undefined;
          if (e.endpoints.size === 0) this.services.delete(k);
        }
        changes.services.add(k);
        changes.hosts = true;
        return;
      }
      case 'Endpoint': {
        const rec = o.value as EndpointRecord;
        const k = serviceKey(o.namespace, rec.service);
        const e = this.services.get(k);
        if (e !== undefined) {
          e.endpoints.delete(o.name);
          e.forViews = undefined;
          if (e.resource === undefined && e.endpoints.size === 0) {
            this.services.delete(k);
            changes.hosts = true;
          }
        }
        changes.services.add(k);
        return;
      }
      case 'MeshConfig':
        if (this.mesh === o) this.mesh = undefined;
        changes.global = true;
        return;
    }
    if (!this.link(o, key, undefined, changes)) this.extensionChanged(o, changes);
  }

  /**
   * Files a route under its parents or a policy under its target (`value` set), or takes it out (`value` undefined),
   * noting the services touched. Returns false for other kinds.
   */
  private link(o: StoredObject, key: string, value: StoredObject | undefined, changes: Changes): boolean {
    let map: Map<string, Map<string, StoredObject>>;
    let targets: string[];
    if (ROUTE_KINDS.has(o.kind)) {
      map = this.routesByParent;
      targets = routeParents(o);
    } else if (SERVICE_TARGETED.has(o.kind)) {
      map = this.policiesByTarget;
      targets = [policyTarget(o) ?? ''];
    } else {
      return false;
    }
    for (const t of targets) {
      let m = map.get(t);
      if (value !== undefined) {
        if (m === undefined) map.set(t, (m = new Map()));
        m.set(key, value);
      } else {
        m?.delete(key);
      }
      // A mesh-wide policy ('' target) may change every view.
      if (t === '') changes.global = true;
      else changes.services.add(t);
    }
    return true;
  }

  /** A Fault (or another object routes refer to by extensionRef) changed: the services whose routes name it. */
  private extensionChanged(o: StoredObject, changes: Changes): void {
    const key = `${o.kind}/${o.namespace}/${o.name}`;
    let referenced = false;
    for (const [parent, routes] of this.routesByParent) {
      for (const r of routes.values()) {
        if (routeReferences(r).extensions.includes(key)) {
          changes.services.add(parent);
          referenced = true;
        }
      }
    }
    // An object of a kind this index does not know may matter to every proxy.
    if (!referenced && o.kind !== 'Fault' && o.kind !== 'LocalRateLimit') changes.global = true;
  }

  /** The service key a host name leads to: name, name.ns, name.ns.svc[.cluster.local] or a declared host. */
  resolveHost(host: string): string | undefined {
    if (this.hostsDirty) this.rebuildHosts();
    let h = host.toLowerCase();
    if (h.endsWith('.')) h = h.slice(0, -1);
    return this.byHost.get(h);
  }

  private rebuildHosts(): void {
    const byHost = new Map<string, string>();
    for (const [k, e] of this.services) {
      const [namespace, name] = k.split('/') as [string, string];
      const hosts = e.resource ? hostsOf(e.resource) : [name, `${name}.${namespace}`, `${name}.${namespace}.svc`, `${name}.${namespace}.svc.cluster.local`];
      // A bare name belongs to the default namespace's service when several namespaces use it.
      for (const h of hosts) if (!byHost.has(h) || namespace === 'default') byHost.set(h, k);
    }
    this.byHost = byHost;
    this.hostsDirty = false;
  }

  service(svcKey: string): { resource: StoredObject | undefined; endpoints: ReadonlyMap<string, EndpointRecord> } | undefined {
    return this.services.get(svcKey);
  }

  /**
   * The service as views carry it: `build` runs once after each change of the service or its endpoints, and every view
   * shares the result (which must therefore never be modified).
   */
  serviceForViews(svcKey: string, build: () => unknown): unknown {
    const e = this.services.get(svcKey);
    if (e === undefined) return build();
    e.forViews ??= { value: build() };
    return e.forViews.value;
  }

  routesOf(svcKey: string): Iterable<StoredObject> {
    return this.routesByParent.get(svcKey)?.values() ?? [];
  }

  policiesOf(svcKey: string): Iterable<StoredObject> {
    return this.policiesByTarget.get(svcKey)?.values() ?? [];
  }

  meshWidePolicies(): Iterable<StoredObject> {
    return this.policiesByTarget.get('')?.values() ?? [];
  }

  object(kind: string, namespace: string, name: string): StoredObject | undefined {
    return this.objects.get(`${kind}/${namespace}/${name}`);
  }

  meshConfig(): StoredObject | undefined {
    return this.mesh;
  }

  /** Registered endpoints of every service, for the API. */
  endpointsOf(svcKey: string): EndpointRecord[] {
    return [...(this.services.get(svcKey)?.endpoints.values() ?? [])];
  }
}
