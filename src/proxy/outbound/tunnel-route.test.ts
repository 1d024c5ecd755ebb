// Routes for tunnels over real sockets: connections to a `tcp` port follow the TCPRoute's weighted backends (here a
// label subset), a service without one keeps spreading connections over all of its endpoints, and a WebSocket
// upgrade goes where the HTTPRoute rule matching its request head sends it.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { startRawTcp } from '../../../test/helpers/apps.js';
import { startWsApp, type WsApp } from '../../../test/helpers/ws-app.js';
import { parseResources } from '../../api/v1alpha1/load.js';
import { silentLogger } from '../../core/log.js';
import { compilePlan } from '../config/plan.js';
import { createErrorResponder } from '../stack/error-response.js';
import { HttpFrontend } from '../transport/http-frontend.js';
import { createBindingServer, createOutboundServer, listen } from './accept.js';
import { handleUpgrade } from './tunnel.js';
import type { Binding } from './discover.js';
import type { TunnelDeps } from './tunnel.js';

/** A TCP server that greets every connection with its name and closes it. */
const greeter = (name: string) => startRawTcp((s) => s.end(`${name}\n`));

function readGreeting(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, '127.0.0.1');
    let got = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => (got += d));
    c.on('end', () => resolve(got.trim()));
    c.on('error', reject);
    c.setTimeout(10_000, () => c.destroy(new Error('no greeting')));
  });
}

let a: Awaited<ReturnType<typeof greeter>>;
let wsA: WsApp;
let wsB: WsApp;
let outboundPort = 0;
let frontend: HttpFrontend;
let b: Awaited<ReturnType<typeof greeter>>;
const servers: net.Server[] = [];
const bindings: Record<string, number> = {};

before(async () => {
  [a, b] = await Promise.all([greeter('A'), greeter('B')]);
  [wsA, wsB] = await Promise.all([startWsApp(), startWsApp()]);
  const svc = (name: string) => `apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: ${name} }
spec:
  external: true
  ports: [ { port: 5432, appProtocol: tcp } ]
  subsets: [ { name: v2, labels: { version: v2 } } ]
  endpoints: [ { address: 127.0.0.1, port: ${a.port}, labels: { version: v1 } }, { address: 127.0.0.1, port: ${b.port}, labels: { version: v2 } } ]
`;
  const yaml = `${svc('db')}---
${svc('plain')}---
apiVersion: gateway.networking.k8s.io/v1alpha2
kind: TCPRoute
metadata: { name: db-v2 }
spec:
  parentRefs: [ { name: db } ]
  rules: [ { backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: db.v2, weight: 1 }, { name: db, weight: 0 } ] } ]
---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: chat }
spec: { external: true, ports: [ { port: 80 } ], endpoints: [ { address: 127.0.0.1, port: ${wsA.port} } ] }
---
apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: chat-beta }
spec: { external: true, ports: [ { port: 80 } ], endpoints: [ { address: 127.0.0.1, port: ${wsB.port} } ] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: chat }
spec:
  parentRefs: [ { name: chat } ]
  rules:
  - { matches: [ { path: { value: /beta } } ], backendRefs: [ { name: chat-beta } ] }
  - { matches: [ { path: { value: /rooms } } ], backendRefs: [ { name: chat } ] }
`;
  const parsed = parseResources(yaml, 'tcp.yaml');
  assert.ok(parsed.ok, JSON.stringify(parsed));
  const plan = compilePlan(parsed.resources.map((r) => r.resource), 'web', 1);
  const plans = { current: plan };
  const tunnels: TunnelDeps = { plans, identity: null, log: silentLogger, self: 'web', opened: () => {}, closed: () => {} };
  frontend = new HttpFrontend('outbound', plan.mesh, { service: { call: () => {} }, observer: () => {}, respondError: createErrorResponder(silentLogger, 'web'), onUpgrade: (req, socket, head) => handleUpgrade(tunnels, req, socket, head, null) }, silentLogger);
  const outbound = createOutboundServer(frontend, 100, 5000);
  servers.push(outbound);
  outboundPort = (await listen(outbound, { host: '127.0.0.1', port: 0 })).port;
  for (const name of ['db', 'plain']) {
    const binding: Binding = { service: name, servicePort: undefined };
    const server = createBindingServer(frontend, binding, plans, tunnels, silentLogger);
    servers.push(server);
    bindings[name] = (await listen(server, { host: '127.0.0.1', port: 0 })).port;
  }
});

after(async () => {
  for (const s of servers) s.close();
  frontend?.destroyAll();
  await Promise.all([a?.close(), b?.close(), wsA?.close(), wsB?.close()]);
});

/** Sends a WebSocket handshake for `path` to the outbound listener; resolves with the status (101 when upgraded). */
function upgrade(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: outboundPort, path, agent: false, headers: { host: 'chat', connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve(res.statusCode ?? 0);
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.end();
  });
}

test('a TCPRoute sends every connection of its port to its backend (the v2 subset); weight 0 is never used', async () => {
  for (let i = 0; i < 6; i++) assert.equal(await readGreeting(bindings.db!), 'B');
});

test('without a TCPRoute, connections rotate over all endpoints', async () => {
  const got = new Set<string>();
  for (let i = 0; i < 4; i++) got.add(await readGreeting(bindings.plain!));
  assert.deepEqual([...got].sort(), ['A', 'B']);
});

test('a WebSocket upgrade goes to the backend of the HTTPRoute rule its path matches; no match is refused with 404', async () => {
  assert.equal(await upgrade('/beta/echo?id=u1'), 101);
  assert.ok(wsB.headersOf('u1'), 'the beta app got the upgrade');
  assert.equal(wsA.headersOf('u1'), undefined);
  assert.equal(await upgrade('/rooms/echo?id=u2'), 101);
  assert.ok(wsA.headersOf('u2'));
  assert.equal(await upgrade('/elsewhere?id=u3'), 404);
  assert.equal(wsA.headersOf('u3') ?? wsB.headersOf('u3'), undefined);
});
