// Compiles validated resources into the proxy's immutable plan: services by host name, their ports, protocols and
// endpoints, and the mesh settings in milliseconds. A config change builds a new plan and swaps it atomically.

import { createHash } from 'node:crypto';
import { parseDuration } from '../../api/v1alpha1/duration.js';
import type { AuthorizationPolicy } from '../../api/v1alpha1/policies.js';
import { defaultMeshConfigSpec, type MeshConfigSpec, type Resource, type Service } from '../../api/v1alpha1/resources.js';
import { compileAuthorization, type Authorization } from '../../security/authorization.js';
import { compileRoutes } from './route-table.js';
import { ServiceTarget } from './targets.js';
import { compileTrafficPolicy } from './traffic-policy.js';

export { BackendTarget, EndpointSet, ServiceTarget, type EndpointTarget, type PortTarget } from './targets.js';
export type { PortRoutes } from './route-table.js';

export interface MeshSettings {
  trustDomain: string;
  limits: MeshConfigSpec['limits'];
  timeouts: {
    connectMs: number;
    requestHeadersMs: number;
    clientIdleMs: number;
    idleMs: number;
    detectMs: number;
    drainMs: number;
  };
  transportHttp1: 'h1' | 'h2';
  /** PINGs on HTTP/2 sessions to peer sidecars. */
  keepalive: { intervalMs: number; timeoutMs: number };
  identityFiles: MeshConfigSpec['identity'];
  accessLog: { enabled: boolean; format: 'json' | 'text' };
  /** Transparent mode: pass connections to destinations outside the mesh through, or refuse them. */
  outboundTrafficPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY';
  /** Trace sampling (percent of requests that start a trace) and the OTLP/HTTP collector's base URL, if any. */
  tracing: { samplingPercent: number; otlpEndpoint: string | null };
}

export interface ProxyPlan {
  /** Increases by one for every applied change. */
  readonly version: number;
  /** Content hash of the resources, to tell a real change from a rewrite of the same file. */
  readonly hash: string;
  readonly mesh: MeshSettings;
  readonly services: ReadonlyMap<string, ServiceTarget>;
  /** The sidecar's own service, when the config declares it. */
  readonly self: ServiceTarget | undefined;
  readonly resources: readonly Resource[];
  /** The AuthorizationPolicies of the sidecar's own service, compiled (enforced on inbound requests). */
  readonly authz: Authorization;
  /** PeerAuthentication mode of the sidecar's own service: its own policy, else the mesh-wide one, else STRICT. */
  readonly mtlsMode: MtlsMode;
  lookupHost(host: string): ServiceTarget | undefined;
  /**
   * Transparent mode: the service a connection to address:port was meant for - one of its virtual IPs
   * (`spec.addresses`) or the address of one of its endpoints, on one of its service ports.
   */
  lookupAddress(address: string, port: number): ServiceTarget | undefined;
}

function ms(text: string): number {
  return parseDuration(text) ?? 0;
}

export function meshSettings(spec: MeshConfigSpec): MeshSettings {
  const t = spec.timeouts;
  return {
    trustDomain: spec.trustDomain,
    limits: spec.limits,
    timeouts: {
      connectMs: ms(t.connect),
      requestHeadersMs: ms(t.requestHeaders),
      clientIdleMs: ms(t.clientIdle),
      idleMs: ms(t.idle),
      detectMs: ms(t.detect),
      drainMs: ms(t.drain),
    },
    transportHttp1: spec.transport.http1,
    keepalive: { intervalMs: ms(spec.transport.keepalive.interval), timeoutMs: ms(spec.transport.keepalive.timeout) },
    identityFiles: spec.identity,
    accessLog: { enabled: spec.telemetry.accessLog?.enabled ?? false, format: spec.telemetry.accessLog?.format ?? 'json' },
    outboundTrafficPolicy: spec.outboundTrafficPolicy.mode,
    tracing: { samplingPercent: spec.telemetry.tracing?.sampling ?? 1, otlpEndpoint: spec.telemetry.otlp?.endpoint ?? null },
  };
}

export function hashResources(resources: readonly Resource[]): string {
  const canon = resources.map((r) => JSON.stringify(r)).sort().join('\n');
  return createHash('sha256').update(canon).digest('hex').slice(0, 16);
}

function serviceTarget(svc: Service, trustDomain: string): ServiceTarget {
  const { name, namespace } = svc.metadata;
  const hosts = [name, `${name}.${namespace}`, `${name}.${namespace}.svc`, `${name}.${namespace}.svc.cluster.local`, ...(svc.spec.hosts ?? []).map((h) => h.toLowerCase())];
  return new ServiceTarget(
    name,
    namespace,
    `spiffe://${trustDomain}/ns/${namespace}/svc/${name}`,
    svc.spec.external,
    svc.spec.ports.map((p) => ({ port: p.port, protocol: p.appProtocol ?? 'detect', name: p.name })),
    (svc.spec.endpoints ?? []).map((e) => ({ key: `${e.address}:${e.port}`, address: e.address, port: e.port, labels: e.labels ?? {} })),
    hosts,
    new Map((svc.spec.subsets ?? []).map((sub) => [sub.name, sub.labels])),
  );
}

export function compilePlan(resources: readonly Resource[], selfService: string, version: number): ProxyPlan {
  let meshSpec = defaultMeshConfigSpec();
  for (const r of resources) if (r.kind === 'MeshConfig') meshSpec = r.spec;
  const mesh = meshSettings(meshSpec);
  const services = new Map<string, ServiceTarget>();
  const byHost = new Map<string, ServiceTarget>();
  const byAddress = new Map<string, ServiceTarget>();
  for (const r of resources) {
    if (r.kind !== 'Service') continue;
    const t = serviceTarget(r, mesh.trustDomain);
    services.set(`${t.name}.${t.namespace}`, t);
    for (const h of t.hosts) {
      // A bare name belongs to the default namespace's service if several namespaces use it.
      if (!byHost.has(h) || t.namespace === 'default') byHost.set(h, t);
    }
    indexAddresses(byAddress, t, r.spec.addresses ?? []);
  }
  const self = services.get(`${selfService}.default`) ?? [...services.values()].find((s) => s.name === selfService);
  const selfNamespace = self?.namespace ?? 'default';
  compileRoutes(resources, services, selfNamespace);
  attachPolicies(resources, services);
  const authzPolicies = resources.filter((r): r is AuthorizationPolicy => r.kind === 'AuthorizationPolicy');
  return {
    version,
    hash: hashResources(resources),
    mesh,
    services,
    self,
    resources,
    authz: compileAuthorization(authzPolicies, selfService, selfNamespace, mesh.trustDomain),
    mtlsMode: mtlsModeOf(resources, selfService, selfNamespace),
    lookupHost(host: string): ServiceTarget | undefined {
      let h = host.toLowerCase();
      if (h.endsWith('.')) h = h.slice(0, -1);
      return byHost.get(h);
    },
    lookupAddress(address: string, port: number): ServiceTarget | undefined {
      return byAddress.get(addressKey(address, port));
    },
  };
}

function addressKey(address: string, port: number): string {
  // An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d.
  const a = address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address.toLowerCase();
  return `${a}|${port}`;
}

/**
 * An address as written in a resource, in the form lookups use: IPv6 in its shortest form (RFC 5952, as inet_ntop
 * and so the SO_ORIGINAL_DST addon give it), so that `FD00:0:0::1` finds `fd00::1`. Done once per config.
 */
function indexForm(address: string): string {
  if (!address.includes(':') || (address.toLowerCase().startsWith('::ffff:') && address.includes('.'))) return address.toLowerCase();
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return address.toLowerCase();
  }
}

/**
 * Indexes a service by each of its virtual IPs and endpoint addresses, combined with each of its ports. A virtual IP
 * is the service's own and wins; an endpoint address shared by two services (two sidecars behind one address) goes
 * to the first one declared.
 */
function indexAddresses(index: Map<string, ServiceTarget>, t: ServiceTarget, vips: readonly string[]): void {
  for (const p of t.ports) {
    for (const ip of vips) index.set(addressKey(indexForm(ip), p.port), t);
    for (const e of t.endpoints) {
      const k = addressKey(indexForm(e.address), p.port);
      if (!index.has(k)) index.set(k, t);
    }
  }
}

/** Each service gets the TrafficPolicy that targets it (validation allows one per service; the first one wins). */
function attachPolicies(resources: readonly Resource[], services: ReadonlyMap<string, ServiceTarget>): void {
  for (const r of resources) {
    if (r.kind !== 'TrafficPolicy') continue;
    const svc = services.get(`${r.spec.targetRef.name}.${r.metadata.namespace}`);
    if (svc !== undefined && svc.policy === null) svc.policy = compileTrafficPolicy(`${r.metadata.namespace}/${r.metadata.name}`, r.spec);
  }
}

export type MtlsMode = 'STRICT' | 'PERMISSIVE';

/** The service's own PeerAuthentication wins over a mesh-wide one (no targetRef); without either: STRICT. */
function mtlsModeOf(resources: readonly Resource[], service: string, namespace: string): MtlsMode {
  let meshWide: MtlsMode | undefined;
  for (const r of resources) {
    if (r.kind !== 'PeerAuthentication') continue;
    const t = r.spec.targetRef;
    if (t === undefined) meshWide ??= r.spec.mtls.mode;
    else if (t.name === service && r.metadata.namespace === namespace) return r.spec.mtls.mode;
  }
  return meshWide ?? 'STRICT';
}

/** Splits an authority into host and port; undefined port when absent. Returns undefined for a malformed authority. */
export function splitAuthority(authority: string): { host: string; port: number | undefined } | undefined {
  if (authority.length === 0 || authority.length > 1024) return undefined;
  let host: string;
  let portText: string | undefined;
  if (authority.charCodeAt(0) === 91 /* [ */) {
    const close = authority.indexOf(']');
    if (close === -1) return undefined;
    host = authority.slice(1, close);
    const rest = authority.slice(close + 1);
    if (rest.length > 0) {
      if (rest.charCodeAt(0) !== 58) return undefined;
      portText = rest.slice(1);
    }
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon === -1) host = authority;
    else {
      host = authority.slice(0, colon);
      portText = authority.slice(colon + 1);
      if (host.includes(':')) return undefined;
    }
  }
  if (host.length === 0) return undefined;
  if (portText === undefined || portText === '') return { host, port: undefined };
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65535) return undefined;
  return { host, port };
}
