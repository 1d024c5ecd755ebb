// Response shapes of the control plane's HTTP API that more than one side reads: the control plane writes them, the
// CLI and the dashboard read them. Types only (the dashboard's bundle imports them too, so nothing here may need Node).

/** One tapped request as `GET /api/v1/tap` streams it: the shape proxies send on their config stream, checked there. */
export type { TapEvent } from './tap-messages.js';

/** Golden signals over a window: rate, success rate (null without requests) and latency quantiles. */
export interface Signals {
  rps: number;
  successRate: number | null;
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
  requests: number;
}
export interface ServiceStats extends Signals {
  service: string;
  namespace: string;
}
export interface RouteStats extends Signals {
  service: string;
  route: string;
}
export interface EdgeStats extends Signals {
  source: string;
  destination: string;
}
export interface TimelinePoint {
  t: number;
  rps: number;
  successRate: number | null;
  p99Ms: number | null;
}
/** GET /api/v1/stats. */
export interface StatsReport {
  windowSeconds: number;
  now: number;
  services: ServiceStats[];
  routes: RouteStats[];
  edges: EdgeStats[];
  timeline: Array<{ service: string; points: TimelinePoint[] }>;
}

/** One entry of GET /api/v1/traces. */
export interface TraceSummary {
  traceId: string;
  rootService: string;
  rootName: string;
  startTime: number;
  durationMs: number;
  spanCount: number;
  services: string[];
  error: boolean;
}

/** One entry of GET /api/v1/proxies. */
export interface ProxyStatus {
  proxyId: string;
  service: string;
  namespace: string;
  address: string | null;
  endpoint: { address: string; port: number; labels: Record<string, string> } | null;
  replica: string;
  connected: boolean;
  connectedAt: string;
  lastContact: string;
  subscriptions: string[];
  /** The last version sent, and the proxy's answer to it. */
  sentVersion: number | null;
  ackedVersion: number | null;
  nack: { version: number; reason: string; at: string } | null;
  state: 'ACK' | 'NACK' | 'PENDING' | 'NONE';
  /** The replica's warm-up holds a newer config back from this proxy (it keeps serving its own): why, since when, for how long at most. */
  heldBack?: { reason: string; since: string; releaseInMs: number };
  /** The proxy's mesh certificate (when it has one from the mesh CA): expiry and issue time (Unix ms), its root. */
  certNotAfter?: number;
  certIssuedAt?: number;
  certRoot?: string;
  /** Fingerprints of the roots in the proxy's trust bundle. */
  trustedRoots?: string[];
}

export type SpanKindName = 'internal' | 'server' | 'client' | 'producer' | 'consumer' | 'unspecified';
export type AttributeValue = string | number | boolean;

/** One received span, as GET /api/v1/traces/ID shows it. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  service: string;
  name: string;
  kind: SpanKindName;
  /** Unix milliseconds, fractional. */
  startTime: number;
  durationMs: number;
  status: 'ok' | 'error';
  attributes: Record<string, AttributeValue>;
}
