// The sidecar's metrics (names and labels of ARCHITECTURE.md section 7), fed by the diagnostics channels. Label
// values come from config and fixed sets only (never raw paths), so the series count stays bounded.

import { httpExchangeChannel, tunnelChannel } from '../core/diagnostics.js';
import { Counter, Gauge, Histogram, LATENCY_BUCKETS, Registry } from './registry.js';

/** What the metrics read from a finished exchange (the proxy's HttpExchange satisfies it). */
export interface ExchangeFacts {
  direction: string;
  source: string | null;
  destination: string | null;
  /** "namespace/name" of the route that matched (outbound, when the destination has routes). */
  route: string | null;
  method: string;
  status: number;
  grpcStatus: string | null;
  errorCode: string | null;
  /** A gRPC request (success is then judged by grpc-status). */
  grpc: boolean;
  requestBytes: number;
  responseBytes: number;
  startTime: number;
  endTime: number;
  /** The tries of the retry layer (outbound, destinations with a retry policy); null or absent otherwise. */
  attempts?: ReadonlyArray<{ readonly reason: string | null; readonly verdict: string }> | null;
}

export interface TunnelFacts {
  phase: 'open' | 'close';
  direction: string;
  source: string | null;
  destination: string | null;
  /** Why the tunnel could not be opened (a mesh error), if it could not. */
  error: { code: string } | null;
  result: { aToB: number; bToA: number } | null;
}

/** Status codes as label text, made once (no string per request). */
const STATUS_TEXT: readonly string[] = Array.from({ length: 1000 }, (_, i) => String(i));

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH']);

export class ProxyMetrics {
  readonly registry = new Registry();
  readonly requests = this.registry.register(
    new Counter('mycel_requests_total', 'HTTP requests handled by the sidecar', ['direction', 'source_service', 'destination_service', 'route', 'method', 'status_code', 'grpc_status', 'retried']),
  );
  readonly duration = this.registry.register(
    new Histogram('mycel_request_duration_seconds', 'Time from request start to the last response byte', ['direction', 'source_service', 'destination_service', 'route'], LATENCY_BUCKETS),
  );
  readonly requestBytes = this.registry.register(new Counter('mycel_request_bytes_total', 'Request body bytes sent on', ['direction', 'source_service', 'destination_service']));
  readonly responseBytes = this.registry.register(new Counter('mycel_response_bytes_total', 'Response body bytes', ['direction', 'source_service', 'destination_service']));
  readonly meshErrors = this.registry.register(new Counter('mycel_mesh_errors_total', 'Requests the mesh itself failed, by x-mycel-error reason', ['direction', 'destination_service', 'reason']));
  readonly tcpOpened = this.registry.register(new Counter('mycel_tcp_connections_opened_total', 'Tunnels (TCP, CONNECT, WebSocket) opened', ['direction', 'source_service', 'destination_service']));
  readonly tcpClosed = this.registry.register(new Counter('mycel_tcp_connections_closed_total', 'Tunnels closed', ['direction', 'source_service', 'destination_service']));
  readonly tcpSent = this.registry.register(new Counter('mycel_tcp_sent_bytes_total', 'Tunnel bytes from the client to the destination', ['direction', 'source_service', 'destination_service']));
  readonly tcpReceived = this.registry.register(new Counter('mycel_tcp_received_bytes_total', 'Tunnel bytes from the destination to the client', ['direction', 'source_service', 'destination_service']));
  readonly configVersion = this.registry.register(new Gauge('mycel_config_version', 'Version of the config the sidecar runs'));
  readonly configRejected = this.registry.register(new Counter('mycel_config_rejected_total', 'Config changes rejected as invalid'));
  readonly certExpiry = this.registry.register(new Gauge('mycel_cert_expiry_timestamp_seconds', 'When the workload certificate expires (Unix time)'));
  readonly retries = this.registry.register(new Counter('mycel_retries_total', 'Retries sent, by what the failed try got', ['destination_service', 'reason']));
  readonly retryBudgetExhausted = this.registry.register(
    new Counter('mycel_retry_budget_exhausted_total', 'Retries not sent because the destination\'s retry budget was spent', ['destination_service']),
  );
  readonly rateLimited = this.registry.register(new Counter('mycel_rate_limited_total', 'Requests answered 429 by a local rate limit', ['destination_service', 'source_service']));
  readonly breakerOpen = this.registry.register(new Gauge('mycel_circuit_breaker_open', 'Whether a destination\'s circuit breaker is at one of its limits (1) or not (0)', ['destination_service']));
  readonly outlierEjections = this.registry.register(new Counter('mycel_outlier_ejections_total', 'Endpoints ejected by passive outlier detection', ['destination_service']));
  readonly authzDenied = this.registry.register(new Counter('mycel_authz_denied_total', 'Requests and tunnels refused by an AuthorizationPolicy', ['destination_service', 'source_service']));
  readonly inboundConnections = this.registry.register(
    new Counter('mycel_inbound_connections_total', 'Connections admitted on the inbound port, by transport: mtls, or plaintext (PeerAuthentication PERMISSIVE)', ['mode']),
  );
  readonly traceSpansExported = this.registry.register(new Counter('mycel_trace_spans_exported_total', 'Spans accepted by an OTLP receiver', ['exporter']));
  readonly traceSpansDropped = this.registry.register(
    new Counter('mycel_trace_spans_dropped_total', 'Spans not exported: the queue was full (receiver slow or down) or the export failed', ['exporter', 'reason']),
  );
  readonly handshakeErrors = this.registry.register(new Counter('mycel_inbound_handshake_errors_total', 'Inbound mTLS handshakes refused', ['reason']));

  private readonly onExchange = (msg: unknown): void => this.recordExchange(msg as ExchangeFacts);
  private readonly onTunnel = (msg: unknown): void => this.recordTunnel(msg as TunnelFacts);

  /** Starts listening on the proxy's diagnostics channels. */
  subscribe(): void {
    httpExchangeChannel.subscribe(this.onExchange);
    tunnelChannel.subscribe(this.onTunnel);
  }

  unsubscribe(): void {
    httpExchangeChannel.unsubscribe(this.onExchange);
    tunnelChannel.unsubscribe(this.onTunnel);
  }

  recordExchange(ex: ExchangeFacts): void {
    const src = ex.source ?? 'unknown';
    const dst = ex.destination ?? 'unknown';
    const status = ex.errorCode === 'downstream-reset' && ex.status === 0 ? '0' : (STATUS_TEXT[ex.status] ?? String(ex.status));
    const method = METHODS.has(ex.method) ? ex.method : 'OTHER';
    const route = ex.route ?? '';
    const attempts = ex.attempts ?? null;
    let retried = 'false';
    if (attempts !== null) {
      if (attempts.length > 1) retried = 'true';
      for (let i = 0; i < attempts.length; i++) {
        const a = attempts[i]!;
        if (a.verdict === 'retry') this.retries.child(dst, a.reason ?? 'unknown').value++;
        else if (a.verdict === 'budget-exhausted') this.retryBudgetExhausted.child(dst).value++;
      }
    }
    this.requests.child(ex.direction, src, dst, route, method, status, ex.grpcStatus ?? '', retried).value++;
    this.duration.child(ex.direction, src, dst, route).observe((ex.endTime - ex.startTime) / 1000);
    if (ex.requestBytes > 0) this.requestBytes.child(ex.direction, src, dst).value += ex.requestBytes;
    if (ex.responseBytes > 0) this.responseBytes.child(ex.direction, src, dst).value += ex.responseBytes;
    if (ex.errorCode !== null) {
      this.meshErrors.child(ex.direction, dst, ex.errorCode).value++;
      if (ex.errorCode === 'rate-limited') this.rateLimited.child(dst, src).value++;
      else if (ex.errorCode === 'denied-by') this.authzDenied.child(dst, src).value++;
    }
  }

  recordTunnel(t: TunnelFacts): void {
    const src = t.source ?? 'unknown';
    const dst = t.destination ?? 'unknown';
    if (t.phase === 'open') {
      this.tcpOpened.child(t.direction, src, dst).value++;
      return;
    }
    this.tcpClosed.child(t.direction, src, dst).value++;
    if (t.error !== null) this.meshErrors.child(t.direction, dst, t.error.code).value++;
    if (t.result !== null) {
      this.tcpSent.child(t.direction, src, dst).value += t.result.aToB;
      this.tcpReceived.child(t.direction, src, dst).value += t.result.bToA;
    }
  }

  render(): string {
    return this.registry.render();
  }
}
