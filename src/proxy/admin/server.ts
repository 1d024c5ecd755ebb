// The sidecar's admin listener (loopback only): liveness, readiness, the running config and its version, metrics,
// the endpoints it knows, the live tap stream, and drain/shutdown.

import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { TapHub } from '../../telemetry/tap.js';
import { serveTap } from '../../telemetry/tap-stream.js';

export interface AdminView {
  ready(): { ready: boolean; reason: string };
  config(): unknown;
  endpoints(): unknown;
  metrics(): string;
  /** The proxy's taps: GET /tap streams its request events. */
  taps: TapHub;
  drain(): void;
  shutdown(): void;
}

function send(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

function json(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, JSON.stringify(value, null, 2) + '\n', 'application/json');
}

export function createAdminServer(view: AdminView): http.Server {
  const server = http.createServer({ headersTimeout: 10_000, requestTimeout: 30_000 }, (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const method = req.method ?? 'GET';
    if (method === 'POST') {
      if (path === '/drain') {
        json(res, 202, { draining: true });
        view.drain();
        return;
      }
      if (path === '/shutdown') {
        json(res, 202, { shuttingDown: true });
        view.shutdown();
        return;
      }
      send(res, 404, `no POST ${path}; try POST /drain or POST /shutdown\n`);
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') {
      send(res, 405, 'method not allowed\n');
      return;
    }
    switch (path) {
      case '/live':
        send(res, 200, 'live\n');
        return;
      case '/ready': {
        const r = view.ready();
        send(res, r.ready ? 200 : 503, r.ready ? 'ready\n' : `not ready: ${r.reason}\n`);
        return;
      }
      case '/config':
        json(res, 200, view.config());
        return;
      case '/endpoints':
        json(res, 200, view.endpoints());
        return;
      case '/metrics':
        send(res, 200, view.metrics(), 'text/plain; version=0.0.4; charset=utf-8');
        return;
      case '/tap':
        serveTap(res, new URLSearchParams(q === -1 ? '' : url.slice(q + 1)), (filter, stream) => view.taps.tap(filter, (ev) => stream.offer(ev)));
        return;
      case '/':
        send(res, 200, 'mycel sidecar admin: /live /ready /config /endpoints /metrics /tap, POST /drain, POST /shutdown\n');
        return;
      default:
        send(res, 404, `no ${path} here; see /\n`);
    }
  });
  return server;
}
