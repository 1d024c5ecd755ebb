// The control plane's own metrics (ARCHITECTURE.md section 6): connected proxies, pushes and their ACK/NACK, push
// duration from a change to the proxy's ACK, and the store revision.

import { Counter, Gauge, Histogram, Registry } from '../telemetry/registry.js';
import type { CaState } from './ca/ca-state.js';

const PUSH_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class ControlMetrics {
  readonly registry = new Registry();
  readonly connectedProxies = this.registry.register(new Gauge('mycel_control_connected_proxies', 'Proxies with an open config stream to this replica'));
  readonly pushDuration = this.registry.register(new Histogram('mycel_control_push_duration_seconds', 'From a config change reaching this replica to a proxy ACKing the version it produced', [], PUSH_BUCKETS));
  readonly pushes = this.registry.register(new Counter('mycel_control_pushes_total', 'Config versions answered by proxies, by answer', ['result']));
  readonly warmup = this.registry.register(new Gauge('mycel_control_warmup', '1 while this replica is in its warm-up (configs that would take endpoints from running proxies wait)'));
  readonly pushesHeld = this.registry.register(new Counter('mycel_control_pushes_held_total', 'Configs held back from a proxy that already serves one, during warm-up'));
  readonly revision = this.registry.register(new Gauge('mycel_control_config_revision', 'Store revision this replica has seen'));
  readonly applies = this.registry.register(new Counter('mycel_control_applies_total', 'Apply and delete requests, by result', ['result']));
  readonly storeErrors = this.registry.register(new Counter('mycel_control_store_errors_total', 'Store writes that failed, by reason', ['reason']));

  readonly caExpiry = this.registry.register(new Gauge('mycel_control_ca_cert_expiry_timestamp_seconds', 'When each mesh CA root and intermediate expires (Unix time)', ['role', 'fingerprint']));

  readonly apiCertExpiry = this.registry.register(new Gauge('mycel_control_api_cert_expiry_timestamp_seconds', 'When this replica\'s API server certificate expires (Unix time); it is renewed at half-life'));

  /** Rebuilds the CA expiry series from the CA state (roots and intermediates come and go with rotations). */
  updateCa(state: CaState | undefined): void {
    this.caExpiry.clear();
    if (state === undefined) return;
    for (const r of state.roots) this.caExpiry.set(Math.floor(r.notAfter / 1000), ['root', r.fingerprint.slice(0, 16)]);
    for (const i of state.intermediates) this.caExpiry.set(Math.floor(i.notAfter / 1000), ['intermediate', i.fingerprint.slice(0, 16)]);
  }
  readonly recentTraces = this.registry.register(new Gauge('mycel_control_recent_traces', 'Traces held in the recent-trace buffer'));
  readonly recentTraceSpans = this.registry.register(new Gauge('mycel_control_recent_trace_spans', 'Spans held in the recent-trace buffer'));
  readonly traceSpansDropped = this.registry.register(new Counter('mycel_control_trace_spans_dropped_total', 'Received spans not kept because their trace was at its span bound'));
  readonly statsSeries = this.registry.register(new Gauge('mycel_control_stats_series', 'Golden-signal series in the 10-minute window (mycel stat)'));
  readonly statsDropped = this.registry.register(
    new Counter('mycel_control_stats_dropped_total', 'Golden-signal observations not kept: the window was at its series cap, or a proxy was at its per-summary cap', ['reason']),
  );

  render(): string {
    return this.registry.render();
  }
}
