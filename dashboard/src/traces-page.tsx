// Recent traces from the control plane's buffer (no collector needed), and one trace as a waterfall: a row per span
// in call order, indented by depth, its bar placed and sized on the trace's time axis.

import { useState } from 'preact/hooks';
import type { Span, TraceSummary } from './api.js';
import { fmtAge, fmtClock, fmtMs } from './format.js';
import { useNow, usePoll } from './hooks.js';
import { waterfallRows } from './waterfall.js';

export function TracesPage({ query }: { query: URLSearchParams }) {
  const service = query.get('service');
  const now = useNow(5000);
  const list = usePoll<{ traces: TraceSummary[] }>(`/api/v1/traces?limit=50${service ? `&service=${encodeURIComponent(service)}` : ''}`, 5000);
  const traces = list.data?.traces ?? [];
  return (
    <div>
      <div class="panel-head">
        <h1>Recent traces{service ? ` through ${service}` : ''}</h1>
        <span class="muted">newest first · kept by the control plane, no collector needed</span>
        {service && <a href="#/traces">all services</a>}
      </div>
      {list.error?.missing && <div class="banner">This control plane does not serve /api/v1/traces yet.</div>}
      {list.error !== undefined && !list.error.missing && <div class="banner">{list.error.message}</div>}
      {list.data !== undefined && traces.length === 0 && (
        <div class="empty">No traces yet. Sidecars export a span per hop to the control plane; send some traffic (<code>npx mycel up --demo</code> does) and they show here.</div>
      )}
      {traces.length > 0 && (
        <table class="grid card" data-testid="traces-table">
          <thead>
            <tr><th>when</th><th>root</th><th>services</th><th class="num">spans</th><th class="num">duration</th></tr>
          </thead>
          <tbody>
            {traces.map((t) => (
              <tr key={t.traceId} class="clickable">
                <td class="muted" title={new Date(t.startTime).toLocaleString()}>{fmtAge(t.startTime, now)}</td>
                <td>
                  <a href={`#/traces/${t.traceId}`}>{t.error && <span class="tag bad">error</span>} <b>{t.rootService}</b> <span class="mono">{t.rootName}</span></a>
                </td>
                <td>{t.services.join(', ')}</td>
                <td class="num">{t.spanCount}</td>
                <td class="num">{fmtMs(t.durationMs)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

const PALETTE = 8;

/** The duration label beside its bar: after it, or before it when the bar reaches the right edge. */
function durationPlace(left: number, width: number): Record<string, string> {
  if (left + width <= 85) return { left: `${left + width}%` };
  if (left >= 12) return { right: `${100 - left}%`, marginRight: '6px' };
  // A bar across nearly the whole trace: the label goes inside its right end.
  return { right: `${Math.max(0, 100 - left - width)}%`, marginRight: '4px', color: 'var(--bg)' };
}

export function TracePage({ id }: { id: string }) {
  const trace = usePoll<{ traceId: string; spans: Span[] }>(`/api/v1/traces/${encodeURIComponent(id)}`, 60_000);
  const [open, setOpen] = useState<string | null>(null);
  if (trace.error !== undefined) {
    return (
      <div>
        <div class="crumbs"><a href="#/traces">Traces</a> /</div>
        <div class="banner">{trace.error.missing ? `No trace ${id}: the control plane keeps a bounded number of recent traces, and this one is gone or never arrived.` : trace.error.message}</div>
      </div>
    );
  }
  if (trace.data === undefined) return <div class="empty">Loading trace {id}…</div>;
  const { rows, start, duration } = waterfallRows(trace.data.spans);
  const services = [...new Set(rows.map((r) => r.span.service))];
  return (
    <div>
      <div class="crumbs"><a href="#/traces">Traces</a> /</div>
      <div class="panel-head">
        <h1 class="mono">{id}</h1>
        <span class="muted">{fmtClock(start)} · {fmtMs(duration)} · {rows.length} spans · {services.join(', ')}</span>
      </div>
      <div class="card waterfall" data-testid="waterfall">
        <div class="wf-axis">
          {[0, 0.25, 0.5, 0.75, 1].map((f) => <span key={f} class="wf-tick" data-left={f}>{fmtMs(duration * f)}</span>)}
        </div>
        {rows.map((r) => {
          const left = duration > 0 ? ((r.span.startTime - start) / duration) * 100 : 0;
          const width = duration > 0 ? Math.max(0.4, (r.span.durationMs / duration) * 100) : 100;
          const color = services.indexOf(r.span.service) % PALETTE;
          return [
            <div key={r.span.spanId} class={`wf-row ${r.span.status === 'error' ? 'error' : ''}`} onClick={() => setOpen(open === r.span.spanId ? null : r.span.spanId)}>
              <div class="wf-name" style={{ paddingLeft: `${8 + r.depth * 14}px` }}>
                <span class={`svc c${color}`}>{r.span.service}</span> <span class="mono">{r.span.name}</span> <span class="muted small">{r.span.kind}</span>
              </div>
              <div class="wf-track">
                <div class={`wf-bar c${color}`} style={{ left: `${left}%`, width: `${width}%` }} title={`${fmtMs(r.span.durationMs)} from +${fmtMs(r.span.startTime - start)}`} />
                <span class="wf-dur" style={durationPlace(left, width)}>{fmtMs(r.span.durationMs)}</span>
              </div>
            </div>,
            open === r.span.spanId ? (
              <dl key={`${r.span.spanId}-a`} class="wf-attrs">
                <div><dt>span</dt><dd class="mono">{r.span.spanId} · {r.span.status} · starts +{fmtMs(r.span.startTime - start)}</dd></div>
                {Object.entries(r.span.attributes).map(([k, v]) => (
                  <div key={k}><dt class="mono">{k}</dt><dd class="mono">{typeof v === 'string' ? v : JSON.stringify(v)}</dd></div>
                ))}
              </dl>
            ) : null,
          ];
        })}
      </div>
    </div>
  );
}
