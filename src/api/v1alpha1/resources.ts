// Schemas of the resource kinds (ARCHITECTURE.md section 5), written once: they validate, apply defaults and give the
// TS types. valibot rather than zod: a sidecar loads it, and it costs about 3 MB of memory where zod costs about 14.

import { isIP } from 'node:net';
import * as v from 'valibot';
import { HOST, Metadata, TRUST_DOMAIN, about, bool, duration, durationOrder, fraction, int, labels, name, obj, pathOf, percent, port, positiveDuration, str } from './schema-parts.js';
import { AuthorizationPolicy, PeerAuthentication, TrafficPolicy } from './policies.js';
import { Fault, GRPCRoute, HTTPRoute, LocalRateLimit, TCPRoute } from './routes.js';

export { Metadata };

/** The shape of an IP address, for JSON Schema; the check behind it (node:net isIP) is exact. */
const IP_TEXT = /^[0-9.]+$|^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$/;

export const AppProtocol = v.picklist(['http', 'http2', 'grpc', 'tcp'], 'expected one of http, http2, grpc, tcp');
export type AppProtocol = v.InferOutput<typeof AppProtocol>;

export const ServicePort = obj({
  name: v.optional(name),
  /** The port clients address the service on (`api:8080`). */
  port,
  /** How the app speaks on this port; absent means: detect HTTP/1 and HTTP/2, else TCP. */
  appProtocol: v.optional(AppProtocol),
});

export const StaticEndpoint = obj({
  address: v.pipe(str('an IP address or a host name'), v.regex(HOST, 'expected an IP address or a host name')),
  /** For a meshed service the destination sidecar's inbound (mTLS) port; for an external one the server's port. */
  port,
  labels: v.optional(labels),
});

/**
 * A version subset of a service: the endpoints whose labels include all of `labels` (e.g. `{version: v2}`). Routes
 * send to it with a backendRef `{group: mycel.dev, kind: ServiceSubset, name: <service>.<subset>}` (see routes.ts).
 */
export const ServiceSubset = obj({
  name,
  labels: v.pipe(labels, v.check((l) => Object.keys(l).length > 0, 'a subset selects endpoints by at least one label')),
});

export const ServiceSpec = obj({
  ports: v.pipe(v.array(ServicePort, 'expected a list of ports'), v.minLength(1, 'a Service needs at least one port')),
  /** Extra host names that lead to this service besides name, name.namespace and name.namespace.svc[.cluster.local]. */
  hosts: v.optional(v.array(v.pipe(str('a host name'), v.regex(HOST, 'expected a host name')), 'expected a list of host names')),
  /** Static endpoints: other sidecars' inbound listeners, or the servers of an external service. */
  endpoints: v.optional(v.array(StaticEndpoint, 'expected a list of endpoints')),
  /**
   * Virtual IPs of the service (like a Kubernetes clusterIP): in transparent mode a connection to one of them on a
   * service port goes to this service. The addresses of its endpoints lead to it as well, without being listed here.
   */
  addresses: v.optional(
    v.array(
      about('An IPv4 or IPv6 address that leads to this service in transparent mode.', v.pipe(str('an IP address'), v.regex(IP_TEXT, 'expected an IPv4 or IPv6 address'), v.check((a) => isIP(a) !== 0, 'expected an IPv4 or IPv6 address'))),
      'expected a list of IP addresses',
    ),
  ),
  /** Named groups of endpoints by label (versions), for routes that split traffic between them. */
  subsets: v.optional(
    v.pipe(
      v.array(ServiceSubset, 'expected a list of subsets'),
      v.rawCheck(({ dataset, addIssue }) => {
        if (!dataset.typed) return;
        const seen = new Set<string>();
        dataset.value.forEach((s, i) => {
          if (seen.has(s.name)) addIssue({ message: `duplicate subset name "${s.name}"`, path: pathOf(dataset.value, [i, 'name']) });
          seen.add(s.name);
        });
      }),
    ),
  ),
  /** The service is outside the mesh: its endpoints are reached in plain text, without mTLS. */
  external: v.optional(v.boolean('expected true or false'), false),
});

export const Service = obj({
  apiVersion: v.literal('mycel.dev/v1alpha1', 'expected apiVersion mycel.dev/v1alpha1'),
  kind: v.literal('Service'),
  metadata: Metadata,
  spec: ServiceSpec,
});
export type Service = v.InferOutput<typeof Service>;

export const MeshLimits = obj({
  /** Total bytes of a request head (request line plus headers). */
  maxHeaderBytes: v.optional(int('a size', 1024, 1 << 20), 16 * 1024),
  maxHeaderCount: v.optional(int('a count', 8, 10_000), 100),
  maxUriBytes: v.optional(int('a size', 256, 1 << 20), 8 * 1024),
  /** HTTP/2: concurrent streams a client may open on one connection. */
  maxConcurrentStreams: v.optional(int('a count', 1, 10_000), 250),
  /** Connections the outbound and inbound listeners each accept at once. */
  maxConnections: v.optional(int('a count', 1, 1_000_000), 10_000),
});

export const MeshTimeouts = obj({
  connect: v.optional(duration, '5s'),
  /** A client must send the whole request head within this (slowloris guard). */
  requestHeaders: v.optional(duration, '10s'),
  /** An idle keep-alive connection from a client is closed after this. */
  clientIdle: v.optional(duration, '60s'),
  /** No byte in either direction for this long ends a request or a tunnel. */
  idle: v.optional(duration, '5m'),
  /** Protocol sniffing gives up after this and treats the connection as opaque TCP. */
  detect: v.optional(duration, '100ms'),
  /** Graceful drain: in-flight requests get this long to finish before the proxy exits. */
  drain: v.optional(duration, '30s'),
});

export const MeshIdentityFiles = obj({
  ca: v.pipe(str('a file path'), v.minLength(1, 'expected a file path')),
  cert: v.pipe(str('a file path'), v.minLength(1, 'expected a file path')),
  key: v.pipe(str('a file path'), v.minLength(1, 'expected a file path')),
});

export const MeshCertificates = v.pipe(
  obj({
    workloadLifetime: v.optional(about('Lifetime of the workload certificates the mesh CA issues to sidecars.', positiveDuration), '24h'),
    rootLifetime: v.optional(about('Lifetime of a root certificate the mesh generates (a root supplied by the user keeps its own).', positiveDuration), '8760h'),
    renewAt: v.optional(about('A sidecar renews its certificate once this fraction of its lifetime has passed.', fraction), 0.5),
    backdate: v.optional(about('How far before its issue time a workload certificate starts, for peers whose clocks run behind.', duration), '5m'),
  }),
  durationOrder('workloadLifetime', 'rootLifetime'),
);

export const MeshTelemetry = obj({
  otlp: v.optional(
    about(
      'Where sidecars and the control plane export traces (OTLP over HTTP); absent: traces stay in the control plane\'s recent-trace buffer only.',
      obj({ endpoint: about('Base URL of an OTLP/HTTP collector, such as http://127.0.0.1:4318.', v.pipe(str('a URL'), v.url('expected a URL such as http://127.0.0.1:4318'), v.regex(/^https?:\/\//, 'expected an http:// or https:// URL'))) }),
    ),
  ),
  accessLog: v.optional(
    obj({
      enabled: v.optional(about('Write one access-log line per request to the sidecar\'s stdout.', bool), false),
      format: v.optional(about('json: one JSON object per line; text: one human-readable line.', v.picklist(['json', 'text'], 'expected json or text')), 'json'),
    }),
    {},
  ),
  tracing: v.optional(
    obj({
      sampling: v.optional(about('Percentage of requests that start a new trace (requests that arrive with a sampled trace context are always traced).', percent), 1),
    }),
    {},
  ),
});

export const MeshConfigSpec = obj({
  trustDomain: v.optional(v.pipe(str('a DNS name'), v.maxLength(255, 'expected at most 255 characters'), v.regex(TRUST_DOMAIN, 'expected a lower-case DNS name such as mycel.local')), 'mycel.local'),
  /** Workload identity from files (per sidecar flags --cert/--key/--ca override it). Paths are relative to this file. */
  identity: v.optional(MeshIdentityFiles),
  limits: v.optional(MeshLimits, {}),
  timeouts: v.optional(MeshTimeouts, {}),
  transport: v.optional(
    obj({
      /** How HTTP/1.1 requests travel between sidecars: as HTTP/1.1 on pooled connections, or as HTTP/2 streams on one connection per peer. */
      http1: v.optional(v.picklist(['h1', 'h2'], 'expected h1 or h2'), 'h1'),
      /** HTTP/2 sessions to peer sidecars: a PING every `interval`; nothing received within `timeout` takes the session out of use (a dead peer behind a silent partition, or a stalled link). */
      keepalive: v.optional(
        obj({
          interval: v.optional(about('Time between keepalive PINGs on an HTTP/2 session to a peer sidecar.', positiveDuration), '10s'),
          timeout: v.optional(about('When neither the PING answer nor any other byte arrives within this, the session takes no new requests (they open a new one) and gets a GOAWAY; its requests in flight end on their own timeouts, and it is destroyed after 3 more timeouts of silence.', positiveDuration), '5s'),
        }),
        {},
      ),
    }),
    {},
  ),
  /** The mesh CA: workload and root certificate lifetimes, renewal. */
  certificates: v.optional(MeshCertificates, {}),
  /** Telemetry sinks: trace export, access log, trace sampling. */
  telemetry: v.optional(MeshTelemetry, {}),
  /**
   * Transparent mode: what happens to a connection whose original destination is no mesh service. ALLOW_ANY passes
   * it through to that destination unchanged; REGISTRY_ONLY refuses it.
   */
  outboundTrafficPolicy: v.optional(
    obj({
      mode: v.optional(about('ALLOW_ANY: pass unknown destinations through; REGISTRY_ONLY: refuse them.', v.picklist(['ALLOW_ANY', 'REGISTRY_ONLY'], 'expected ALLOW_ANY or REGISTRY_ONLY')), 'ALLOW_ANY'),
    }),
    {},
  ),
});

export const MeshConfig = obj({
  apiVersion: v.literal('mycel.dev/v1alpha1', 'expected apiVersion mycel.dev/v1alpha1'),
  kind: v.literal('MeshConfig'),
  metadata: Metadata,
  spec: v.optional(MeshConfigSpec, {}),
});
export type MeshConfig = v.InferOutput<typeof MeshConfig>;
export type MeshConfigSpec = v.InferOutput<typeof MeshConfigSpec>;

/** Every kind this version accepts, by kind name. */
export const KINDS = { Service, MeshConfig, HTTPRoute, GRPCRoute, TCPRoute, Fault, LocalRateLimit, TrafficPolicy, PeerAuthentication, AuthorizationPolicy } as const;
export type KindName = keyof typeof KINDS;
export type Resource = Service | MeshConfig | HTTPRoute | GRPCRoute | TCPRoute | Fault | LocalRateLimit | TrafficPolicy | PeerAuthentication | AuthorizationPolicy;

/** Kinds defined by ARCHITECTURE.md that a later version of Mycel will accept (none left in this version). */
export const PLANNED_KINDS: string[] = [];

export function defaultMeshConfigSpec(): MeshConfigSpec {
  return v.parse(MeshConfigSpec, {});
}
