// Schemas of the resource kinds (ARCHITECTURE.md section 5), written once: they validate, give the TS types, and emit JSON Schema.

import { z } from 'zod';
import { parseDuration } from './duration.js';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const HOST = /^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$|^\[?[0-9A-Fa-f:.]+\]?$/;

const name = z.string().max(63).regex(DNS_LABEL, 'expected a DNS label: lower-case letters, digits and "-", starting and ending with a letter or digit');
const port = z.number().int('expected an integer').min(1, 'expected a port number >= 1').max(65535, 'expected a port number <= 65535');
const duration = z.string().refine((s) => parseDuration(s) !== undefined, 'expected a duration such as "250ms", "10s", "1m"');

export const Metadata = z.strictObject({
  name,
  namespace: name.default('default'),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

export const AppProtocol = z.enum(['http', 'http2', 'grpc', 'tcp']);
export type AppProtocol = z.infer<typeof AppProtocol>;

export const ServicePort = z.strictObject({
  name: name.optional(),
  /** The port clients address the service on (`api:8080`). */
  port,
  /** How the app speaks on this port; absent means: detect HTTP/1 and HTTP/2, else TCP. */
  appProtocol: AppProtocol.optional(),
});

export const StaticEndpoint = z.strictObject({
  address: z.string().regex(HOST, 'expected an IP address or a host name'),
  /** For a meshed service the destination sidecar's inbound (mTLS) port; for an external one the server's port. */
  port,
  labels: z.record(z.string(), z.string()).optional(),
});

export const ServiceSpec = z.strictObject({
  ports: z.array(ServicePort).min(1, 'a Service needs at least one port'),
  /** Extra host names that lead to this service besides name, name.namespace and name.namespace.svc[.cluster.local]. */
  hosts: z.array(z.string().regex(HOST, 'expected a host name')).optional(),
  /** Static endpoints: other sidecars' inbound listeners, or the servers of an external service. */
  endpoints: z.array(StaticEndpoint).optional(),
  /** The service is outside the mesh: its endpoints are reached in plain text, without mTLS. */
  external: z.boolean().default(false),
});

export const Service = z.strictObject({
  apiVersion: z.literal('mycel.dev/v1alpha1'),
  kind: z.literal('Service'),
  metadata: Metadata,
  spec: ServiceSpec,
});
export type Service = z.infer<typeof Service>;

export const MeshLimits = z.strictObject({
  /** Total bytes of a request head (request line plus headers). */
  maxHeaderBytes: z.number().int().min(1024).max(1 << 20).default(16 * 1024),
  maxHeaderCount: z.number().int().min(8).max(10_000).default(100),
  maxUriBytes: z.number().int().min(256).max(1 << 20).default(8 * 1024),
  /** HTTP/2: concurrent streams a client may open on one connection. */
  maxConcurrentStreams: z.number().int().min(1).max(10_000).default(250),
  /** Connections the outbound and inbound listeners each accept at once. */
  maxConnections: z.number().int().min(1).max(1_000_000).default(10_000),
});

export const MeshTimeouts = z.strictObject({
  connect: duration.default('5s'),
  /** A client must send the whole request head within this (slowloris guard). */
  requestHeaders: duration.default('10s'),
  /** An idle keep-alive connection from a client is closed after this. */
  clientIdle: duration.default('60s'),
  /** No byte in either direction for this long ends a request or a tunnel. */
  idle: duration.default('5m'),
  /** Protocol sniffing gives up after this and treats the connection as opaque TCP. */
  detect: duration.default('100ms'),
  /** Graceful drain: in-flight requests get this long to finish before the proxy exits. */
  drain: duration.default('30s'),
});

export const MeshIdentityFiles = z.strictObject({
  ca: z.string().min(1),
  cert: z.string().min(1),
  key: z.string().min(1),
});

export const MeshConfigSpec = z.strictObject({
  trustDomain: z.string().regex(HOST, 'expected a DNS name such as mycel.local').default('mycel.local'),
  /** Workload identity from files (per sidecar flags --cert/--key/--ca override it). Paths are relative to this file. */
  identity: MeshIdentityFiles.optional(),
  limits: MeshLimits.default(() => MeshLimits.parse({})),
  timeouts: MeshTimeouts.default(() => MeshTimeouts.parse({})),
  transport: z
    .strictObject({
      /** How HTTP/1.1 requests travel between sidecars: as HTTP/1.1 on pooled connections, or as HTTP/2 streams on one connection per peer. */
      http1: z.enum(['h1', 'h2']).default('h1'),
    })
    .default({ http1: 'h1' }),
});

export const MeshConfig = z.strictObject({
  apiVersion: z.literal('mycel.dev/v1alpha1'),
  kind: z.literal('MeshConfig'),
  metadata: Metadata,
  spec: MeshConfigSpec,
});
export type MeshConfig = z.infer<typeof MeshConfig>;
export type MeshConfigSpec = z.infer<typeof MeshConfigSpec>;

/** Every kind this version accepts, by kind name. */
export const KINDS = { Service, MeshConfig } as const;
export type KindName = keyof typeof KINDS;
export type Resource = Service | MeshConfig;

/** Kinds defined by ARCHITECTURE.md that a later version of Mycel will accept. */
export const PLANNED_KINDS = ['HTTPRoute', 'GRPCRoute', 'TCPRoute', 'TrafficPolicy', 'PeerAuthentication', 'AuthorizationPolicy'];

export function defaultMeshConfigSpec(): MeshConfigSpec {
  return MeshConfigSpec.parse({});
}
