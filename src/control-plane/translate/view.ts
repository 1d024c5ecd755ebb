// Translate: a pure function from the mesh index to one proxy's scoped view - only the services it calls (and the
// backends their routes send to), their endpoints and policies, plus its own inbound policies and the mesh settings.

import { routeReferences, serviceKey, type EndpointRecord, type MeshIndex } from './mesh-index.js';
import type { StoredObject } from '../store/store.js';

export interface ViewRequest {
  service: string;
  namespace: string;
  /** Host names the proxy asked for (sorted, deduplicated). */
  subscriptions: readonly string[];
}

export interface ProxyView {
  /** Resources as the proxy validates and compiles them; Services carry their registered endpoints. */
  resources: unknown[];
  unresolved: string[];
  /** Service keys the view was built from: a change to any of them may change the view. */
  deps: Set<string>;
  /** Endpoints (static and ready registered) of each service in the view, by service key; what warm-up looks at. */
  endpoints: Map<string, number>;
}

type Json = Record<string, unknown>;

function endpointOf(r: EndpointRecord): Json {
  return { address: r.address, port: r.port, labels: { ...r.labels } };
}

/** A Service with its registered endpoints added to the static ones, in a stable order. */
function serviceWithEndpoints(svcKey: string, index: MeshIndex): Json | undefined {
  const entry = index.service(svcKey);
  if (entry === undefined) return undefined;
  const registered = [...entry.endpoints.values()].filter((e) => e.ready).sort((a, b) => (a.proxyId < b.proxyId ? -1 : a.proxyId > b.proxyId ? 1 : 0));
  if (entry.resource === undefined) {
    // No Service declared yet but sidecars registered: serve it on the app's port with protocol detection, so that
    // `mycel run` works before anyone writes a Service. Declaring the Service replaces this.
    const first = registered[0];
    if (first === undefined || first.appPort === undefined) return undefined;
    const [namespace, name] = svcKey.split('/') as [string, string];
    return {
      apiVersion: 'mycel.dev/v1alpha1',
      kind: 'Service',
      metadata: { name, namespace, annotations: { 'mycel.dev/synthesized': 'true' } },
      spec: { ports: [{ port: first.appPort }], endpoints: registered.map(endpointOf) },
    };
  }
  const value = entry.resource.value as Json;
  if (registered.length === 0) return value;
  const spec = value.spec as Json;
  const statics = Array.isArray(spec.endpoints) ? (spec.endpoints as unknown[]) : [];
  return { ...value, spec: { ...spec, endpoints: [...statics, ...registered.map(endpointOf)] } };
}

export function computeView(index: MeshIndex, req: ViewRequest): ProxyView {
  const deps = new Set<string>();
  const out: unknown[] = [];
  const unresolved: string[] = [];
  const seen = new Set<string>();
  const push = (o: StoredObject) => {
    const key = `${o.kind}/${o.namespace}/${o.name}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push(o.value);
  };

  const mesh = index.meshConfig();
  if (mesh !== undefined) push(mesh);
  for (const p of index.meshWidePolicies()) push(p);

  // Services in the view: the proxy's own (inbound side), what it subscribed to (with routes), their backends.
  const included = new Map<string, boolean>(); // svcKey -> include its routes
  const self = serviceKey(req.namespace, req.service);
  included.set(self, false);
  for (const host of req.subscriptions) {
    const k = index.resolveHost(host);
    if (k === undefined) unresolved.push(host);
    else included.set(k, true);
  }
  const frontends = [...included].filter(([, routes]) => routes).map(([k]) => k);
  for (const k of frontends) {
    for (const route of index.routesOf(k)) {
      push(route);
      const refs = routeReferences(route);
      for (const b of refs.services) if (!included.has(b)) included.set(b, false);
      for (const ext of refs.extensions) {
        const [kind, namespace, name] = ext.split('/') as [string, string, string];
        const o = index.object(kind, namespace, name);
        if (o !== undefined) push(o);
      }
    }
  }
  const endpoints = new Map<string, number>();
  for (const k of included.keys()) {
    deps.add(k);
    const svc = index.serviceForViews(k, () => serviceWithEndpoints(k, index));
    if (svc !== undefined) out.push(svc);
    const listed = ((svc as Json | undefined)?.spec as Json | undefined)?.endpoints;
    endpoints.set(k, Array.isArray(listed) ? listed.length : 0);
    for (const p of index.policiesOf(k)) {
      // Traffic policies matter to callers and to the service's own sidecars (its inbound rate limit); authorization
      // and peer authentication only to the service's own sidecars.
      if (p.kind === 'TrafficPolicy' || k === self) push(p);
    }
  }
  return { resources: out, unresolved, deps, endpoints };
}

