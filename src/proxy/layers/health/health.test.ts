import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createDevCa, issueWorkloadCert } from '../../../security/dev-ca.js';
import { ActiveHealthChecker, plainConnect, type CheckedEndpoint } from './index.js';

const servers: { close(): unknown }[] = [];
after(() => {
  for (const s of servers) s.close();
});

function listen(server: net.Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port));
  });
}

const endpointAt = (port: number): CheckedEndpoint => ({ key: `127.0.0.1:${port}`, address: '127.0.0.1', port });

/** An HTTP app whose health answer the test flips; `hang` makes it accept and never answer. */
async function healthApp() {
  const state = { status: 200, hang: false, seen: [] as { url: string; host: string }[] };
  const server = http.createServer((req, res) => {
    state.seen.push({ url: req.url ?? '', host: req.headers.host ?? '' });
    if (state.hang) return;
    res.writeHead(state.status).end('x');
  });
  servers.push({ close: () => server.closeAllConnections() });
  servers.push(server);
  return { state, server, port: await listen(server) };
}

test('HTTP check: GET path with Host, flips only after the thresholds, and reports each flip', async () => {
  const app = await healthApp();
  const flips: string[] = [];
  const ep = endpointAt(app.port);
  const checker = new ActiveHealthChecker({ type: 'http', path: '/healthz', authority: 'api.shop', healthyThreshold: 2, unhealthyThreshold: 2 }, plainConnect, {
    onChange: (e, healthy, detail) => flips.push(`${e.key} ${healthy} ${detail}`),
  });
  checker.update([ep]);
  assert.equal(checker.isHealthy(ep.key), true, 'a new endpoint is healthy until a check says otherwise');
  await checker.checkNow();
  assert.deepEqual(app.state.seen, [{ url: '/healthz', host: 'api.shop' }]);
  assert.equal(checker.health(ep.key)?.lastDetail, 'HTTP 200');

  app.state.status = 503;
  await checker.checkNow();
  assert.equal(checker.isHealthy(ep.key), true, 'one failure is below the unhealthy threshold');
  const gen = checker.generation;
  await checker.checkNow();
  assert.equal(checker.isHealthy(ep.key), false);
  assert.ok(checker.generation > gen);
  app.state.status = 200;
  await checker.checkNow();
  assert.equal(checker.isHealthy(ep.key), false, 'one success is below the healthy threshold');
  await checker.checkNow();
  assert.equal(checker.isHealthy(ep.key), true);
  assert.deepEqual(flips, [`${ep.key} false HTTP 503`, `${ep.key} true HTTP 200`]);
  assert.equal(checker.isHealthy('10.9.9.9:1'), true, 'an endpoint the checker does not know is not its business');
});

test('HTTP check: the first result of a new endpoint decides at once; expected statuses take codes and ranges', async () => {
  const app = await healthApp();
  app.state.status = 500;
  const ep = endpointAt(app.port);
  const strict = new ActiveHealthChecker({ type: 'http', unhealthyThreshold: 5 });
  strict.update([ep]);
  await strict.checkNow();
  assert.equal(strict.isHealthy(ep.key), false);
  assert.equal(strict.health(ep.key)?.checked, true);

  app.state.status = 418;
  const lenient = new ActiveHealthChecker({ type: 'http', expectedStatuses: [[200, 299], 418], healthyThreshold: 1 });
  lenient.update([ep]);
  await lenient.checkNow();
  assert.equal(lenient.isHealthy(ep.key), true);
  app.state.status = 302;
  await lenient.checkNow();
  assert.equal(lenient.health(ep.key)?.consecutiveFailures, 1);
});

test('a check that gets no answer fails at the timeout and its connection is closed', async () => {
  const app = await healthApp();
  app.state.hang = true;
  const ep = endpointAt(app.port);
  const checker = new ActiveHealthChecker({ type: 'http', timeoutMs: 300 });
  checker.update([ep]);
  await checker.checkNow();
  assert.equal(checker.isHealthy(ep.key), false);
  assert.equal(checker.health(ep.key)?.lastDetail, 'no answer within 300 ms');
  assert.equal(app.state.seen.length, 1);
  // The server sees the probe's connection go away (bounded wait, no timing assert).
  for (let i = 0; i < 200; i++) {
    const open = await new Promise<number>((r) => app.server.getConnections((_e, n) => r(n)));
    if (open === 0) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.equal(await new Promise<number>((r) => app.server.getConnections((_e, n) => r(n))), 0);
});

test('TCP check: unhealthy when the port refuses, healthy again when it listens', async () => {
  const server = net.createServer((s) => s.destroy());
  servers.push(server);
  const port = await listen(server);
  const ep = endpointAt(port);
  const checker = new ActiveHealthChecker({ type: 'tcp', healthyThreshold: 1, unhealthyThreshold: 1 });
  checker.update([ep]);
  await checker.checkNow();
  assert.equal(checker.health(ep.key)?.lastDetail, 'connected');
  server.close();
  await once(server, 'close');
  await checker.checkNow();
  assert.equal(checker.isHealthy(ep.key), false);
  assert.match(checker.health(ep.key)!.lastDetail, /ECONNREFUSED/);
  const again = net.createServer((s) => s.destroy());
  servers.push(again);
  await listen(again, port);
  await checker.checkNow();
  assert.equal(checker.isHealthy(ep.key), true);
});

const HEALTH_PROTO = `syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
service Health { rpc Check(HealthCheckRequest) returns (HealthCheckResponse); }
`;

/** A grpc-js server implementing grpc.health.v1 from the real .proto (protobufjs encodes, so our hand codec is checked). */
function healthService(statuses: Map<string, string>, asked: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'mycel-health-'));
  writeFileSync(join(dir, 'health.proto'), HEALTH_PROTO);
  const def = protoLoader.loadSync(join(dir, 'health.proto'), { defaults: true });
  rmSync(dir, { recursive: true, force: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { grpc: { health: { v1: { Health: { service: grpc.ServiceDefinition } } } } };
  const impl = {
    Check(call: grpc.ServerUnaryCall<{ service: string }, unknown>, cb: grpc.sendUnaryData<unknown>) {
      asked.push(call.request.service);
      const status = statuses.get(call.request.service);
      if (status === undefined) cb({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
      else cb(null, { status });
    },
  };
  return { definition: pkg.grpc.health.v1.Health.service, impl };
}

function bindGrpc(server: grpc.Server, creds: grpc.ServerCredentials): Promise<number> {
  return new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, port) => (err ? reject(err) : resolve(port))));
}

test('gRPC check: grpc.health.v1.Health/Check over h2c, SERVING is healthy, anything else is not', { timeout: 60_000 }, async () => {
  const statuses = new Map([['', 'SERVING'], ['shop.Cart', 'SERVING']]);
  const asked: string[] = [];
  const { definition, impl } = healthService(statuses, asked);
  const server = new grpc.Server();
  server.addService(definition, impl);
  servers.push({ close: () => server.forceShutdown() });
  const ep = endpointAt(await bindGrpc(server, grpc.ServerCredentials.createInsecure()));

  const whole = new ActiveHealthChecker({ type: 'grpc', healthyThreshold: 1, unhealthyThreshold: 1 });
  const cart = new ActiveHealthChecker({ type: 'grpc', grpcService: 'shop.Cart', healthyThreshold: 1, unhealthyThreshold: 1 });
  const unknown = new ActiveHealthChecker({ type: 'grpc', grpcService: 'shop.Nope' });
  for (const c of [whole, cart, unknown]) c.update([ep]);
  await Promise.all([whole.checkNow(), cart.checkNow(), unknown.checkNow()]);
  assert.deepEqual(asked.sort(), ['', 'shop.Cart', 'shop.Nope']);
  assert.equal(whole.health(ep.key)?.lastDetail, 'SERVING');
  assert.equal(cart.isHealthy(ep.key), true);
  assert.equal(unknown.isHealthy(ep.key), false);
  assert.equal(unknown.health(ep.key)?.lastDetail, `grpc-status ${grpc.status.NOT_FOUND}`);

  statuses.set('shop.Cart', 'NOT_SERVING');
  await cart.checkNow();
  assert.equal(cart.isHealthy(ep.key), false);
  assert.equal(cart.health(ep.key)?.lastDetail, 'NOT_SERVING');
  statuses.set('shop.Cart', 'SERVING');
  await cart.checkNow();
  assert.equal(cart.isHealthy(ep.key), true);

  // A gRPC server without the health service answers UNIMPLEMENTED.
  const bare = new grpc.Server();
  servers.push({ close: () => bare.forceShutdown() });
  const bareEp = endpointAt(await bindGrpc(bare, grpc.ServerCredentials.createInsecure()));
  const c = new ActiveHealthChecker({ type: 'grpc' });
  c.update([bareEp]);
  await c.checkNow();
  assert.equal(c.health(bareEp.key)?.lastDetail, `grpc-status ${grpc.status.UNIMPLEMENTED}`);
});

test('checks go through the caller\'s connector: gRPC over mutual TLS with ALPN h2', { timeout: 60_000 }, async () => {
  const ca = await createDevCa();
  const serverCert = await issueWorkloadCert(ca, { trustDomain: 'mycel.local', service: 'api' });
  const clientCert = await issueWorkloadCert(ca, { trustDomain: 'mycel.local', service: 'web' });
  const { definition, impl } = healthService(new Map([['', 'SERVING']]), []);
  const server = new grpc.Server();
  server.addService(definition, impl);
  servers.push({ close: () => server.forceShutdown() });
  const creds = grpc.ServerCredentials.createSsl(Buffer.from(ca.certPem), [{ cert_chain: Buffer.from(serverCert.certPem), private_key: Buffer.from(serverCert.keyPem) }], true);
  const ep = endpointAt(await bindGrpc(server, creds));

  const asked: string[] = [];
  const mtls = (e: CheckedEndpoint, protocol: string) =>
    new Promise<net.Socket>((resolve, reject) => {
      asked.push(protocol);
      const s = tls.connect({ host: e.address, port: e.port, ca: ca.certPem, cert: clientCert.certPem, key: clientCert.keyPem, ALPNProtocols: [protocol], checkServerIdentity: () => undefined });
      s.once('secureConnect', () => resolve(s));
      s.once('error', reject);
    });
  const checker = new ActiveHealthChecker({ type: 'grpc', healthyThreshold: 1, unhealthyThreshold: 1 }, mtls);
  checker.update([ep]);
  await checker.checkNow();
  assert.deepEqual(asked, ['h2']);
  assert.equal(checker.health(ep.key)?.lastDetail, 'SERVING');

  // Without a client certificate the server refuses the handshake: unhealthy, with the reason.
  const anonymous = new ActiveHealthChecker({ type: 'grpc' }, (e) =>
    new Promise<net.Socket>((resolve, reject) => {
      const s = tls.connect({ host: e.address, port: e.port, ca: ca.certPem, ALPNProtocols: ['h2'], checkServerIdentity: () => undefined });
      s.once('secureConnect', () => resolve(s));
      s.once('error', reject);
    }),
  );
  anonymous.update([ep]);
  await anonymous.checkNow();
  assert.equal(anonymous.isHealthy(ep.key), false);
});

test('periodic checks run on their timers, and stop() ends them (mock timers)', { timeout: 60_000 }, async (t) => {
  const app = await healthApp();
  const ep = endpointAt(app.port);
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const results: boolean[] = [];
  const flips: boolean[] = [];
  let checked: (() => void) | null = null;
  const checker = new ActiveHealthChecker({ type: 'http', intervalMs: 5000, timeoutMs: 60_000, unhealthyThreshold: 1, healthyThreshold: 2 }, plainConnect, {
    random: () => 0.5,
    onChange: (_e, healthy) => flips.push(healthy),
    onCheck: (_e, ok) => {
      results.push(ok);
      checked?.();
    },
  });
  const nextCheck = () => new Promise<void>((r) => (checked = r));
  // Lets a finished check's continuation schedule the next timer before time moves on (setImmediate is not mocked).
  const settle = async () => {
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  };
  checker.update([ep]);
  checker.start();

  app.state.status = 503;
  t.mock.timers.tick(2499);
  await settle();
  assert.equal(app.state.seen.length, 0, 'the first check waits for its random offset in the interval');
  let check = nextCheck();
  t.mock.timers.tick(1);
  await check;
  await settle();
  assert.deepEqual(flips, [false]);

  app.state.status = 200;
  for (let i = 0; i < 2; i++) {
    check = nextCheck();
    t.mock.timers.tick(5000);
    await check;
    await settle();
  }
  assert.deepEqual(results, [false, true, true]);
  assert.deepEqual(flips, [false, true], 'healthy again after two successes');

  checker.stop();
  t.mock.timers.tick(60_000);
  await settle();
  assert.equal(app.state.seen.length, 3, 'no check after stop()');
});
