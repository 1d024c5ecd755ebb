// An HTTP/1.1 app standing for one instance of a service, whose behaviour a test changes while it runs (slow, failing,
// unhealthy): every answer names the instance in `x-instance`, and GET /health answers by the `healthy` switch.

import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface InstanceBehaviour {
  /** Status of every request but /health (default 200). */
  status: number;
  /** Delay before answering, ms (default 0). */
  delayMs: number;
  /** /health answers 200 when true, 503 when false. */
  healthy: boolean;
  /** Requests wait (unanswered) until release() while true. */
  hold: boolean;
}

export interface InstanceApp {
  readonly name: string;
  readonly port: number;
  readonly behaviour: InstanceBehaviour;
  /** Requests served, /health excluded. */
  hits: number;
  /** Health checks received. */
  checks: number;
  /** Requests held so far and not yet answered. */
  readonly held: number;
  /** Answers every held request (and stops holding). */
  release(): void;
  close(): Promise<void>;
}

export async function startInstanceApp(name: string): Promise<InstanceApp> {
  const parked: Array<() => void> = [];
  const app = {
    name,
    port: 0,
    behaviour: { status: 200, delayMs: 0, healthy: true, hold: false },
    hits: 0,
    checks: 0,
    get held() {
      return parked.length;
    },
    release() {
      app.behaviour.hold = false;
      for (const answer of parked.splice(0)) answer();
    },
    close: async () => {},
  };
  const server = http.createServer((req, res) => {
    req.resume();
    if (req.url === '/health') {
      app.checks++;
      res.writeHead(app.behaviour.healthy ? 200 : 503, { 'x-instance': name, 'content-type': 'text/plain' });
      res.end(app.behaviour.healthy ? 'ok\n' : 'unhealthy\n');
      return;
    }
    app.hits++;
    const answer = () => {
      res.writeHead(app.behaviour.status, { 'x-instance': name, 'content-type': 'text/plain' });
      res.end(`${name} ${req.url ?? ''}\n`);
    };
    const delay = app.behaviour.delayMs;
    if (app.behaviour.hold) parked.push(answer);
    else if (delay > 0) setTimeout(answer, delay);
    else answer();
  });
  server.keepAliveTimeout = 5000;
  app.port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
  app.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return app;
}
