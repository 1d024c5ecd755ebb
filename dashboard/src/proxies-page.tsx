// Every proxy the control plane knows: its service and endpoint, the config version it runs and whether it ACKed or
// NACKed it (with the reason), when it was last heard from, and when its certificate expires.

import type { Proxy } from './api.js';
import { fmtAge } from './format.js';
import { serviceHref, useNow } from './hooks.js';
import type { MeshData } from './main.js';

/** Under a day left on a certificate is worth a warning (workload certs live 24 h and renew at half-life). */
const CERT_WARN_MS = 6 * 3600_000;

function CertCell({ p, now }: { p: Proxy; now: number }) {
  if (p.certNotAfter === undefined) return <span class="muted">–</span>;
  const left = p.certNotAfter - now;
  const cls = left <= 0 ? 'bad' : left < CERT_WARN_MS ? 'warn' : 'good';
  return <span class={`tag ${cls}`} title={new Date(p.certNotAfter).toLocaleString()}>{left <= 0 ? `expired ${fmtAge(p.certNotAfter, now)}` : `expires ${fmtAge(p.certNotAfter, now)}`}</span>;
}

export function ProxiesPage({ mesh }: { mesh: MeshData }) {
  const now = useNow();
  const proxies = [...mesh.proxies].sort((a, b) => a.service.localeCompare(b.service) || a.proxyId.localeCompare(b.proxyId));
  const nacks = proxies.filter((p) => p.state === 'NACK').length;
  return (
    <div>
      <div class="panel-head">
        <h1>Proxies</h1>
        <span class="muted">
          {proxies.length} connected{nacks > 0 ? ` · ${nacks} rejected their config` : ''}
        </span>
      </div>
      {mesh.loaded && proxies.length === 0 && (
        <div class="empty">No proxy is connected. <code>npx mycel up --demo</code> starts six, each next to its app; <code>npx mycel run</code> adds one for yours.</div>
      )}
      {proxies.length > 0 && (
        <table class="grid card" data-testid="proxies-table">
          <thead>
            <tr><th>proxy</th><th>service</th><th>endpoint</th><th>config</th><th>state</th><th>last contact</th><th>certificate</th></tr>
          </thead>
          <tbody>
            {proxies.map((p) => (
              <tr key={p.proxyId} data-proxy={p.proxyId}>
                <td class="mono">{p.proxyId}</td>
                <td><a href={serviceHref(p.namespace, p.service)}>{p.namespace}/{p.service}</a></td>
                <td class="mono">
                  {p.endpoint ? `${p.endpoint.address}:${p.endpoint.port}` : <span class="muted">outbound only</span>}
                  {p.endpoint?.labels.version !== undefined && <span class="tag">{p.endpoint.labels.version}</span>}
                </td>
                <td class="mono">v{p.sentVersion ?? '–'}{p.ackedVersion !== null && p.ackedVersion !== p.sentVersion ? ` (runs v${p.ackedVersion})` : ''}</td>
                <td>
                  <span class={`tag ${p.state === 'ACK' ? 'good' : p.state === 'NACK' ? 'bad' : 'warn'}`}>{p.state}</span>
                  {!p.connected && <span class="tag bad">disconnected</span>}
                  {p.nack !== null && p.state === 'NACK' && <div class="nack">{p.nack.reason}</div>}
                </td>
                <td class="muted">{fmtAge(Date.parse(p.lastContact), now)}</td>
                <td><CertCell p={p} now={now} /></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
