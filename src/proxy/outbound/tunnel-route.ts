// Routes for tunnels: a raw TCP connection (a TCP binding or a CONNECT) follows the TCPRoute of its port; a WebSocket
// or other HTTP upgrade follows the HTTPRoute rule its request head matches. Only the backend choice applies to a
// tunnel: it carries opaque bytes, so header, rewrite, mirror and fault filters have nothing to act on.

import type { IncomingMessage } from 'node:http';
import { MycelError } from '../../core/errors.js';
import type { WeightedBackends } from '../config/route-table.js';
import type { BackendTarget, PortTarget, ServiceTarget } from '../config/targets.js';
import { requestHeaderList } from '../transport/h1/server-response.js';

function draw(backends: WeightedBackends, route: string): BackendTarget | MycelError {
  const b = backends.pick(Math.random());
  if (b === null) return new MycelError('route-invalid', `every backend of route ${route} has weight 0`);
  if (b.target === null) return new MycelError('route-invalid', `route ${route}: ${b.invalid ?? 'invalid backend'}`);
  return b.target;
}

/** The backend a tunnel to `svc`:`port` goes to; undefined when no route applies (the service itself). */
export function tunnelBackend(svc: ServiceTarget, port: PortTarget, upgrade: IncomingMessage | null): BackendTarget | MycelError | undefined {
  const routes = svc.routes.get(port.port);
  if (routes === undefined) return undefined;
  if (upgrade === null) return routes.tcp === null ? undefined : draw(routes.tcp.backends, routes.tcp.route);
  if (routes.candidates === null) return undefined;
  const url = upgrade.url ?? '/';
  const path = url.charCodeAt(0) === 47 ? url : url.replace(/^https?:\/\/[^/]*/, '') || '/';
  const c = routes.candidates.matchHttp(upgrade.method ?? 'GET', upgrade.headers.host ?? '', path, requestHeaderList(upgrade.rawHeaders));
  if (c === null) return new MycelError('no-route', `no rule of the routes of ${svc.name}:${port.port} matches the upgrade request ${path.slice(0, 100)}`);
  return draw(c.rule.backends, c.rule.route);
}
