// HTTP/1.1 apps on 127.0.0.1 that misbehave on purpose, by path: fail a fraction, fail or reset or hang the first
// arrivals of a request id, always fail, hang. Apps started together share one arrival log (and one idea of "the
// first arrivals of id X"), so a test can follow a request across retries to different endpoints.

import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net from 'node:net';
import { createHash } from 'node:crypto';

export interface Arrival {
  app: string;
  method: string;
  path: string;
  id: string | null;
  /** Date.now() when the request head arrived. */
  at: number;
  headers: http.IncomingHttpHeaders;
  bodyBytes: number;
  bodySha256: string;
}

export interface MisbehavingApp {
  name: string;
  port: number;
}

export interface MisbehavingApps {
  apps: MisbehavingApp[];
  arrivals: Arrival[];
  /** Arrivals of one request id, in order. */
  of(id: string): Arrival[];
  /** Arrivals whose path starts with `prefix`. */
  count(prefix: string): number;
  close(): Promise<void>;
}

/**
 * Paths, by their last segment (query parameters in brackets):
 * - /ok: 200 naming the app;
 * - /flaky [p]: 503 with probability p (from `random`), else 200;
 * - /fail-first [id, n, status, retry-after]: the first n arrivals of id answer status (503) with Retry-After if given;
 * - /reset-first [id, n]: the first n arrivals of id get their connection destroyed (no answer);
 * - /hang-first [id, n]: the first n arrivals of id get no answer until the caller gives up;
 * - /always [status]: always that status; /hang: never answers.
 * Every other arrival of a request id, and every request not named here, is answered 200 after its whole body.
 */
export async function startMisbehavingApps(names: string[], random: () => number = Math.random): Promise<MisbehavingApps> {
  const arrivals: Arrival[] = [];
  const seen = new Map<string, number>();
  const servers: http.Server[] = [];
  const apps: MisbehavingApp[] = [];
  for (const name of names) {
    const server = http.createServer((req, res) => handle(name, req, res));
    server.keepAliveTimeout = 5000;
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
    servers.push(server);
    apps.push({ name, port });
  }

  function handle(app: string, req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const q = url.searchParams;
    const id = q.get('id');
    const at = Date.now();
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (d: Buffer) => {
      bytes += d.length;
      hash.update(d);
    });
    req.on('error', () => {});
    req.on('end', () => {
      arrivals.push({ app, method: req.method ?? '', path: url.pathname, id, at, headers: req.headers, bodyBytes: bytes, bodySha256: hash.digest('hex') });
      let nth = 0;
      if (id !== null) {
        nth = (seen.get(id) ?? 0) + 1;
        seen.set(id, nth);
      }
      const early = nth <= Number(q.get('n') ?? '1');
      const answer = (status: number, extra: Record<string, string> = {}) => {
        res.writeHead(status, { 'content-type': 'text/plain', 'x-app': app, ...extra });
        res.end(`${status} from ${app}\n`);
      };
      // The last path segment names the behaviour, so that a route prefix can be put in front of it.
      switch (url.pathname.slice(url.pathname.lastIndexOf('/'))) {
        case '/flaky':
          return answer(random() < Number(q.get('p') ?? '0.5') ? 503 : 200);
        case '/fail-first': {
          const ra = q.get('retry-after');
          return early ? answer(Number(q.get('status') ?? '503'), ra === null ? {} : { 'retry-after': ra }) : answer(200);
        }
        case '/reset-first':
          if (early) return void req.socket.destroy();
          return answer(200);
        case '/hang-first':
          if (early) return;
          return answer(200);
        case '/hang':
          return;
        case '/always':
          return answer(Number(q.get('status') ?? '503'));
        default:
          return answer(200);
      }
    });
  }

  return {
    apps,
    arrivals,
    of: (id) => arrivals.filter((a) => a.id === id),
    count: (prefix) => arrivals.filter((a) => a.path.startsWith(prefix)).length,
    close: async () => {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve) => {
              s.close(() => resolve());
              s.closeAllConnections();
            }),
        ),
      );
    },
  };
}

/** A TCP server that accepts connections and never says a word (a hung process, or a TLS peer that never answers). */
export async function startSilentServer(): Promise<{ port: number; accepted: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const state = { port: 0, accepted: 0, close: async () => {} };
  const server = net.createServer((s) => {
    state.accepted++;
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  state.port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
  state.close = () => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return state;
}
