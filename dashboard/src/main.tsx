// The dashboard's shell: header and navigation, the mesh-wide polls every page shares (stats, proxies, services),
// the hash router, and the sign-in screen when the API says the session is missing or expired.

import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { onSignedOut, type Proxy, type Resource, type Stats } from './api.js';
import { fmtMs, fmtPercent, fmtRps, health } from './format.js';
import { meshTotals } from './graph-model.js';
import { useNow, usePoll, useRoute } from './hooks.js';
import { ProxiesPage } from './proxies-page.js';
import { ServicePage } from './service-page.js';
import { SignIn } from './sign-in.js';
import { TapPage } from './tap-page.js';
import { TopologyPage } from './topology.js';
import { TracePage, TracesPage } from './traces-page.js';
import './styles.css';

export interface MeshData {
  stats: Stats | null;
  /** Why stats are missing: not merged into this control plane yet, or an error. */
  statsProblem: string | null;
  proxies: Proxy[];
  services: Array<{ name: string; namespace: string }>;
  loaded: boolean;
}

const NAV: Array<[string, string, string]> = [
  ['topology', '#/', 'Topology'],
  ['tap', '#/tap', 'Live tap'],
  ['traces', '#/traces', 'Traces'],
  ['proxies', '#/proxies', 'Proxies'],
];

function App() {
  const route = useRoute();
  const [signedOut, setSignedOut] = useState(false);
  useEffect(() => onSignedOut(() => setSignedOut(true)), []);
  const stats = usePoll<Stats>(signedOut ? null : '/api/v1/stats?window=60', 3000, 30_000);
  const proxies = usePoll<{ items: Proxy[] }>(signedOut ? null : '/api/v1/proxies', 4000);
  const services = usePoll<{ items: Resource[] }>(signedOut ? null : '/api/v1/resources/Service', 10_000);
  const now = useNow();

  if (signedOut || location.hash.startsWith('#login-')) return <SignIn reason={location.hash} />;

  const mesh: MeshData = {
    stats: stats.data ?? null,
    statsProblem: stats.error === undefined ? null : stats.error.missing ? 'This control plane does not serve /api/v1/stats yet, so the graph shows who calls whom without numbers.' : stats.error.message,
    proxies: proxies.data?.items ?? [],
    services: (services.data?.items ?? []).map((r) => ({ name: r.metadata.name, namespace: r.metadata.namespace ?? 'default' })),
    loaded: proxies.at > 0 && services.at > 0,
  };
  const totals = meshTotals(mesh.stats);
  const lastAnswer = Math.max(stats.at, proxies.at);
  const offline = proxies.error !== undefined && proxies.error.status === 0;
  const active = route.page === 'trace' ? 'traces' : route.page;

  return (
    <div class="shell">
      <header class="top">
        <a class="brand" href="#/" aria-label="Mycel home">
          <span class="brand-mark" aria-hidden="true" />
          mycel
        </a>
        <nav>
          {NAV.map(([page, href, label]) => (
            <a key={page} href={href} class={active === page ? 'active' : ''} aria-current={active === page ? 'page' : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <div class="top-stats" data-testid="mesh-totals">
          {totals !== null && (
            <>
              <span><b>{fmtRps(totals.rps)}</b> rps</span>
              <span class={`h-${health(totals.successRate, totals.rps)}`}><b>{fmtPercent(totals.successRate)}</b> success</span>
              <span><b>{fmtMs(totals.p99Ms)}</b> worst p99</span>
            </>
          )}
          <span class={`live ${offline ? 'off' : ''}`} title={lastAnswer > 0 ? `last answer ${new Date(lastAnswer).toLocaleTimeString()}` : 'waiting for the control plane'}>
            {offline ? 'control plane unreachable' : lastAnswer > 0 && now - lastAnswer > 15_000 ? 'stale' : 'live'}
          </span>
        </div>
      </header>
      <main>
        {route.page === 'topology' && <TopologyPage mesh={mesh} />}
        {route.page === 'service' && <ServicePage mesh={mesh} namespace={route.params[0] as string} name={route.params[1] as string} />}
        {route.page === 'tap' && <TapPage mesh={mesh} query={route.query} />}
        {route.page === 'traces' && <TracesPage query={route.query} />}
        {route.page === 'trace' && <TracePage id={route.params[0] as string} />}
        {route.page === 'proxies' && <ProxiesPage mesh={mesh} />}
      </main>
    </div>
  );
}

const root = document.getElementById('app') as HTMLElement;
// The static "Loading…" line goes; Preact renders into an empty box.
root.textContent = '';
render(<App />, root);
