// The live tap: pick a service and optional filters (path prefix, method, status, direction), start, and watch its
// requests stream in, newest first; a row opens its details (identities, endpoint, retries, trace).

import { useState } from 'preact/hooks';
import type { TapEvent } from './api.js';
import { fmtClock, fmtMs } from './format.js';
import type { MeshData } from './main.js';
import { isFailure } from './tap-events.js';
import { useTap } from './use-tap.js';

const KEEP = 300;

interface Filters {
  service: string;
  path: string;
  method: string;
  status: string;
  direction: string;
}

function tapPath(f: Filters): string {
  const q = new URLSearchParams({ service: f.service });
  if (f.path !== '') q.set('path', f.path);
  if (f.method !== '') q.set('method', f.method);
  if (f.status !== '') q.set('status', f.status);
  if (f.direction !== '') q.set('direction', f.direction);
  return `/api/v1/tap?${q}`;
}

function statusClass(e: TapEvent): string {
  if (isFailure(e)) return 'h-bad';
  if (e.status !== null && e.status >= 400) return 'h-warn';
  return 'h-good';
}

function Details({ e }: { e: TapEvent }) {
  const rows: Array<[string, string]> = [
    ['proxy', e.proxy],
    ['authority', e.authority],
    ['source identity', e.sourceIdentity ?? '–'],
    ['destination identity', e.destinationIdentity ?? '–'],
    ['route', e.route ?? '–'],
    ['endpoint', e.endpoint ?? '–'],
    ['retries', String(e.retries)],
    ['gRPC status', e.grpcStatus === null ? '–' : String(e.grpcStatus)],
    ['mesh error', e.error ?? '–'],
  ];
  return (
    <tr class="details">
      <td colSpan={8}>
        <dl>
          {rows.map(([k, v]) => (
            <div key={k}><dt>{k}</dt><dd class="mono">{v}</dd></div>
          ))}
          {e.traceId !== null && (
            <div><dt>trace</dt><dd><a class="mono" href={`#/traces/${e.traceId}`}>{e.traceId}</a></dd></div>
          )}
        </dl>
      </td>
    </tr>
  );
}

export function TapPage({ mesh, query }: { mesh: MeshData; query: URLSearchParams }) {
  const names = [...new Set([...mesh.services.map((s) => s.name), ...mesh.proxies.map((p) => p.service)])].sort();
  const [form, setForm] = useState<Filters>({ service: query.get('service') ?? '', path: '', method: '', status: '', direction: '' });
  const [running, setRunning] = useState<Filters | null>(query.get('service') ? { ...form } : null);
  const [open, setOpen] = useState<string | null>(null);
  const tap = useTap(running === null ? null : tapPath(running), KEEP);
  const service = form.service || names[0] || '';
  const set = (k: keyof Filters) => (ev: Event) => setForm({ ...form, [k]: (ev.target as HTMLInputElement).value });

  return (
    <div class="tap-page">
      <div class="panel-head">
        <h1>Live tap</h1>
        <span class="muted">every request through the sidecars of one service, as it happens (no bodies)</span>
      </div>
      <form
        class="card filters"
        onSubmit={(ev) => {
          ev.preventDefault();
          if (running !== null) return setRunning(null);
          setOpen(null);
          setRunning({ ...form, service });
        }}
      >
        <label>
          service
          <select value={service} onChange={set('service')} disabled={running !== null} name="service">
            {names.map((n) => <option key={n} value={n}>{n}</option>)}
          </select>
        </label>
        <label>
          path prefix
          <input value={form.path} onInput={set('path')} placeholder="/api" disabled={running !== null} name="path" />
        </label>
        <label>
          method
          <select value={form.method} onChange={set('method')} disabled={running !== null} name="method">
            {['', 'GET', 'POST', 'PUT', 'DELETE', 'PATCH'].map((m) => <option key={m} value={m}>{m || 'any'}</option>)}
          </select>
        </label>
        <label>
          status
          <select value={form.status} onChange={set('status')} disabled={running !== null} name="status">
            {['', '5xx', '200', '404', '429', '503'].map((m) => <option key={m} value={m}>{m || 'any'}</option>)}
          </select>
        </label>
        <label>
          direction
          <select value={form.direction} onChange={set('direction')} disabled={running !== null} name="direction">
            {['', 'inbound', 'outbound'].map((m) => <option key={m} value={m}>{m || 'both'}</option>)}
          </select>
        </label>
        <button type="submit" class={running !== null ? 'stop' : 'start'} disabled={service === ''}>
          {running !== null ? 'Stop' : 'Start tap'}
        </button>
        <span class={`tap-state ${tap.state}`} data-testid="tap-state">
          {tap.state === 'idle' ? '' : tap.state === 'live' ? `live · ${tap.seen} events` : tap.state === 'connecting' ? 'connecting…' : tap.state === 'ended' ? `ended · ${tap.seen} events` : ''}
        </span>
      </form>
      {tap.state === 'error' && <div class="banner">{tap.error}</div>}
      {running === null && tap.events.length === 0 && (
        <div class="empty">Pick a service and start the tap. {names.length === 0 && <>No services yet: run <code>npx mycel up --demo</code>.</>}</div>
      )}
      {running !== null && tap.events.length === 0 && tap.state === 'live' && <div class="empty">Waiting for requests to {running.service}…</div>}
      {tap.events.length > 0 && (
        <table class="grid tap-table card" data-testid="tap-table">
          <thead>
            <tr><th>time</th><th></th><th>source → destination</th><th>method</th><th>path</th><th class="num">status</th><th class="num">latency</th><th>route</th></tr>
          </thead>
          <tbody>
            {tap.events.map((e) => {
              const key = String(e.seq);
              return [
                <tr key={key} class="tap-row clickable" onClick={() => setOpen(open === key ? null : key)}>
                  <td class="mono">{fmtClock(e.time)}</td>
                  <td><span class={`tag dir-${e.direction}`} title={e.direction === 'inbound' ? 'seen by the callee\'s sidecar' : 'seen by the caller\'s sidecar'}>{e.direction === 'inbound' ? 'in' : 'out'}</span></td>
                  <td>{e.sourceService} → {e.destinationService}</td>
                  <td class="mono">{e.method}</td>
                  <td class="mono clip">{e.path}</td>
                  <td class={`num ${statusClass(e)}`}>{e.status ?? '–'}{e.error !== null && <span class="tag bad">{e.error}</span>}</td>
                  <td class="num">{fmtMs(e.latencyMs)}</td>
                  <td class="mono muted">{e.route ?? ''}{e.retries > 0 ? ` · ${e.retries} retries` : ''}</td>
                </tr>,
                open === key ? <Details key={`${key}-d`} e={e} /> : null,
              ];
            })}
          </tbody>
        </table>
      )}
    </div>
  );
}
