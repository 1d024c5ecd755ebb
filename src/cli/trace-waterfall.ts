// Renders traces for the terminal: the recent-trace list as a table, and one trace as a waterfall (spans indented by
// depth, bars placed and scaled on the trace's own time axis, errors marked).

import type { ReceivedSpan } from '../control-plane/traces/otlp-decode.js';
import type { TraceSummary } from '../control-plane/traces/trace-buffer.js';
import { spanTreeOrder } from '../telemetry/span-tree.js';
import { table } from './control-client.js';

/** A row of GET /api/v1/traces and a span of GET /api/v1/traces/ID (the control plane's shapes). */
export type TraceListItem = TraceSummary;
export type WaterfallSpan = ReceivedSpan;

export function formatMs(ms: number): string {
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 10) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(2)} ms`;
}

export function renderTraceList(traces: readonly TraceListItem[], now = Date.now()): string {
  if (traces.length === 0) return 'No traces yet. Sampled requests show up here a second or two after they finish (MeshConfig spec.telemetry.tracing.sampling sets the rate).\n';
  const rows = traces.map((t) => [
    t.traceId,
    `${Math.max(0, Math.round((now - t.startTime) / 1000))}s ago`,
    `${t.rootService} ${t.rootName}`,
    t.services.join(','),
    formatMs(t.durationMs),
    String(t.spanCount),
    t.error ? 'ERROR' : '',
  ]);
  return table(['TRACE', 'STARTED', 'ROOT', 'SERVICES', 'DURATION', 'SPANS', 'ERROR'], rows);
}

export function renderWaterfall(traceId: string, spans: readonly WaterfallSpan[], barWidth = 40): string {
  if (spans.length === 0) return `trace ${traceId}: no spans\n`;
  const t0 = Math.min(...spans.map((s) => s.startTime));
  const t1 = Math.max(...spans.map((s) => s.startTime + s.durationMs));
  const total = Math.max(t1 - t0, 0.001);
  const rows = spanTreeOrder(spans);
  const labels = rows.map(({ span, depth }) => `${'  '.repeat(Math.min(depth, 20))}${span.service} ${span.name}${span.kind === 'client' || span.kind === 'server' ? ` (${span.kind})` : ''}`);
  const labelWidth = Math.min(60, Math.max(...labels.map((l) => l.length)));
  const durations = rows.map(({ span }) => formatMs(span.durationMs));
  const durWidth = Math.max(...durations.map((d) => d.length));
  const errors = spans.filter((s) => s.status === 'error').length;
  const lines = [`trace ${traceId}   ${formatMs(total)}   ${spans.length} spans${errors > 0 ? `   ${errors} with errors` : ''}`];
  rows.forEach(({ span }, i) => {
    const from = Math.min(barWidth - 1, Math.floor(((span.startTime - t0) / total) * barWidth));
    const len = Math.max(1, Math.min(barWidth - from, Math.round((span.durationMs / total) * barWidth)));
    const bar = ' '.repeat(from) + (span.status === 'error' ? 'x' : '█').repeat(len) + ' '.repeat(barWidth - from - len);
    const label = labels[i]!.length > labelWidth ? labels[i]!.slice(0, labelWidth - 3) + '...' : labels[i]!.padEnd(labelWidth);
    const reason = span.attributes['mycel.error'];
    const mark = span.status === 'error' ? `  ERROR${typeof reason === 'string' ? ` ${reason}` : ''}` : '';
    lines.push(`${label}  ${durations[i]!.padStart(durWidth)}  |${bar}|${mark}`);
  });
  return lines.join('\n') + '\n';
}
