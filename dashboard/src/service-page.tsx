// One service: its golden signals now and over the last five minutes, who calls it and whom it calls, its endpoints
// with health and version, the routes and policies in force, and its failures as they happen (from the tap).

import { useMemo } from 'preact/hooks';
import type { Endpoint, Resource, Stats } from './api.js';
import { fmtAge, fmtClock, fmtMs, fmtPercent, fmtRps, health } from './format.js';
import { serviceHref, useNow, usePoll } from './hooks.js';
import type { MeshData } from './main.js';
import { Plot } from './plot.js';
import { configFor } from './resources-summary.js';
import { grpcFailed, isFailure } from './tap-events.js';
import { useTap } from './use-tap.js';

const PLOT_WINDOW_S = 300;

function Metric({ label, value, cls = '' }: { label: string; value: string; cls?: string }) {
  return (
    <div class={`metric ${cls}`}>
      <div class="metric-value">{value}</div>
      <div class="metric-label">{label}</div>
    </div>
  );
}

function Failures({ name }: { name: string }) {
  const path = `/api/v1/tap?service=${encodeURIComponent(name)}`;
  const tap = useTap(path, 20, isFailure);
  return (
    <section class="card">
      <h3>
        Recent failures <span class="muted small">live, since this page opened · {tap.seen} requests watched</span>
      </h3>
      {tap.state === 'error' && <p class="muted">{tap.error}</p>}
      {tap.state !== 'error' && tap.events.length === 0 && <p class="muted">None so far. Failed requests (5xx, gRPC errors, and requests the mesh refused, with its reason) show here as they happen.</p>}
      {tap.events.length > 0 && (
        <table class="grid" data-testid="failures-table">
          <thead>
            <tr><th>time</th><th>call</th><th>request</th><th>status</th><th>reason</th></tr>
          </thead>
          <tbody>
            {tap.events.map((e) => (
              <tr key={e.seq}>
                <td class="mono">{fmtClock(e.time)}</td>
                <td>{e.sourceService} → {e.destinationService}</td>
                <td class="mono clip">{e.method} {e.path}</td>
                <td class="h-bad num">{e.status ?? '–'}{grpcFailed(e) ? ` / grpc ${e.grpcStatus}` : ''}</td>
                <td>{e.error !== null ? <span class="tag bad">{e.error}</span> : 'the app answered so'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function ServicePage({ mesh, namespace, name }: { mesh: MeshData; namespace: string; name: string }) {
  const now = useNow(5000);
  const stats = usePoll<Stats>(`/api/v1/stats?window=${PLOT_WINDOW_S}`, 5000, 30_000);
  const endpoints = usePoll<{ items: Endpoint[] }>(`/api/v1/endpoints/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`, 5000);
  const resources = usePoll<{ items: Resource[] }>('/api/v1/resources', 10_000);
  const config = useMemo(() => configFor(resources.data?.items ?? [], namespace, name), [resources.data, namespace, name]);

  const current = mesh.stats?.services.find((s) => s.service === name && s.namespace === namespace) ?? null;
  // The newest bucket is still filling: plotted, it would always look like a drop.
  const complete = (stats.data?.now ?? 0) - 10_000;
  const timeline = (stats.data?.timeline.find((t) => t.service === name)?.points ?? []).filter((p) => p.t <= complete);
  const times = timeline.map((p) => p.t);
  const inbound = (mesh.stats?.edges ?? []).filter((e) => e.destination === name);
  const outbound = (mesh.stats?.edges ?? []).filter((e) => e.source === name);
  const routes = (stats.data?.routes ?? []).filter((r) => r.service === name);
  const proxies = mesh.proxies.filter((p) => p.service === name && p.namespace === namespace);
  const h = health(current?.successRate, current?.rps ?? 0);

  return (
    <div class="service-page">
      <div class="crumbs"><a href="#/">Topology</a> / {namespace} /</div>
      <div class="service-head">
        <h1><span class={`dot big h-${h}`} />{name}</h1>
        <a class="button" href={`#/tap?service=${encodeURIComponent(name)}`}>Tap its requests</a>
        <a class="button" href={`#/traces?service=${encodeURIComponent(name)}`}>Its traces</a>
      </div>
      <div class="metrics" data-testid="service-metrics">
        <Metric label="requests / s" value={current ? fmtRps(current.rps) : '–'} />
        <Metric label="success" value={fmtPercent(current?.successRate)} cls={`h-${h}`} />
        <Metric label="p50" value={fmtMs(current?.p50Ms)} />
        <Metric label="p95" value={fmtMs(current?.p95Ms)} />
        <Metric label="p99" value={fmtMs(current?.p99Ms)} />
        <Metric label="instances" value={String(proxies.filter((p) => p.connected).length)} />
      </div>
      {stats.error?.missing && <div class="banner">This control plane does not serve /api/v1/stats yet: no golden signals to plot.</div>}
      {current !== null && current.rps === 0 && <div class="banner">{name} served no requests in the last minute. Is anything calling it? <code>npx mycel up --demo</code> starts a load generator.</div>}
      {!stats.error?.missing && <div class="plots">
        <Plot window={`last ${PLOT_WINDOW_S / 60} min`} title="requests / s" times={times} values={timeline.map((p) => p.rps)} format={(v) => (v === null ? '–' : fmtRps(v))} color="--accent" />
        <Plot window={`last ${PLOT_WINDOW_S / 60} min`} title="success rate" times={times} values={timeline.map((p) => p.successRate)} format={fmtPercent} color="--good" min={0} max={1.02} fill={false} />
        <Plot window={`last ${PLOT_WINDOW_S / 60} min`} title="p99 latency" times={times} values={timeline.map((p) => p.p99Ms)} format={fmtMs} color="--warn" />
      </div>}

      <div class="columns">
        <section class="card">
          <h3>Callers and callees <span class="muted small">last {mesh.stats?.windowSeconds ?? 60} s</span></h3>
          {inbound.length + outbound.length === 0 ? (
            <p class="muted">No calls to or from {name} measured yet.</p>
          ) : (
            <table class="grid">
              <thead>
                <tr><th>call</th><th class="num">rps</th><th class="num">success</th><th class="num">p99</th></tr>
              </thead>
              <tbody>
                {[...inbound, ...outbound].map((e) => (
                  <tr key={`${e.source}->${e.destination}`}>
                    <td>
                      <span class={`dot h-${health(e.successRate, e.rps)}`} />
                      {e.source === name ? name : <a href={serviceHref(namespace, e.source)}>{e.source}</a>} → {e.destination === name ? name : <a href={serviceHref(namespace, e.destination)}>{e.destination}</a>}
                    </td>
                    <td class="num">{fmtRps(e.rps)}</td>
                    <td class={`num h-${health(e.successRate, e.rps)}`}>{fmtPercent(e.successRate)}</td>
                    <td class="num">{fmtMs(e.p99Ms)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {routes.length > 0 && (
            <>
              <h4>By route <span class="muted small">last {PLOT_WINDOW_S / 60} min</span></h4>
              <table class="grid">
                <thead>
                  <tr><th>route</th><th class="num">rps</th><th class="num">success</th><th class="num">p99</th></tr>
                </thead>
                <tbody>
                  {routes.map((r) => (
                    <tr key={r.route}>
                      <td class="mono">{r.route}</td>
                      <td class="num">{fmtRps(r.rps)}</td>
                      <td class={`num h-${health(r.successRate, r.rps)}`}>{fmtPercent(r.successRate)}</td>
                      <td class="num">{fmtMs(r.p99Ms)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          )}
        </section>

        <section class="card">
          <h3>Endpoints</h3>
          {endpoints.error !== undefined && <p class="muted">{endpoints.error.message}</p>}
          {endpoints.data !== undefined && endpoints.data.items.length === 0 && <p class="muted">No endpoints: start an instance with <code>npx mycel run --service {name} --port PORT -- your app</code>.</p>}
          {endpoints.data !== undefined && endpoints.data.items.length > 0 && (
            <table class="grid" data-testid="endpoints-table">
              <thead>
                <tr><th>address</th><th>version</th><th>health</th><th>config</th></tr>
              </thead>
              <tbody>
                {endpoints.data.items.map((e) => {
                  const proxy = proxies.find((p) => p.proxyId === e.proxyId);
                  return (
                    <tr key={`${e.address}:${e.port}`}>
                      <td class="mono">{e.address}:{e.port}</td>
                      <td>{e.labels.version ?? <span class="muted">–</span>}</td>
                      <td>{e.ready ? <span class="tag good">ready</span> : <span class="tag bad">not ready</span>} {e.source === 'static' && <span class="tag">static</span>}</td>
                      <td>{proxy ? <span class={`tag ${proxy.state === 'ACK' ? 'good' : proxy.state === 'NACK' ? 'bad' : 'warn'}`}>v{proxy.ackedVersion ?? proxy.sentVersion ?? '–'} {proxy.state}</span> : <span class="muted">{e.leaseExpires ? `lease ${fmtAge(Date.parse(e.leaseExpires), now)}` : '–'}</span>}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          )}
        </section>
      </div>

      <section class="card">
        <h3>Routes and policies in force</h3>
        {config.routes.length + config.policies.length === 0 ? (
          <p class="muted">None: callers reach {name} with the defaults (round robin, no retries, mutual TLS). Add an HTTPRoute or a TrafficPolicy with <code>npx mycel apply -f FILE</code>.</p>
        ) : (
          <ul class="config-list" data-testid="config-list">
            {[...config.routes, ...config.policies].map((c) => (
              <li key={`${c.kind}/${c.name}`}>
                <span class="tag kind">{c.kind}</span> <b>{c.name}</b>
                <ul>
                  {c.lines.map((l, i) => <li key={i} class="mono">{l}</li>)}
                </ul>
              </li>
            ))}
          </ul>
        )}
      </section>

      <Failures name={name} />
    </div>
  );
}
