// The config stream protocol against a real control plane (file store in a temp dir) with raw HTTP/2 clients:
// versions are sent only when a view changes, a NACKed version is never re-sent, views are scoped, bad input is refused;
// during warm-up a proxy that already serves a config is not sent a view that takes a service's endpoints away.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../core/log.js';
import { STREAM_PATH, STREAM_PROTOCOL, type ControlMessage } from '../../api/v1alpha1/stream-messages.js';
import { ControlPlane } from '../control-plane.js';
import { FileStore } from '../store/file-store.js';
import { REPLICA_KIND } from '../replicas.js';

interface Client {
  messages: ControlMessage[];
  bytes: number;
  ended: Promise<void>;
  send(m: unknown): void;
  raw(text: string): void;
  next(pred: (m: ControlMessage) => boolean, timeoutMs?: number): Promise<ControlMessage>;
  close(): void;
}

function connect(url: string, token: string): Client {
  const session = http2.connect(url);
  session.on('error', () => {});
  const stream = session.request({ ':method': 'POST', ':path': STREAM_PATH, authorization: `Bearer ${token}` });
  const messages: ControlMessage[] = [];
  const waiters = new Set<() => void>();
  let buf = '';
  const client: Client = {
    messages,
    bytes: 0,
    ended: new Promise((resolve) => {
      stream.on('close', () => resolve());
      stream.on('end', () => resolve());
    }),
    send: (m) => stream.write(JSON.stringify(m) + '\n'),
    raw: (text) => stream.write(text),
    next(pred, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const take = (): boolean => {
          const i = messages.findIndex(pred);
          if (i === -1) return false;
          resolve(messages.splice(i, 1)[0] as ControlMessage);
          return true;
        };
        if (take()) return;
        const waiter = () => {
          if (take()) {
            clearTimeout(timer);
            waiters.delete(waiter);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`no matching message in ${timeoutMs} ms; have ${JSON.stringify(messages).slice(0, 300)}`));
        }, timeoutMs);
        waiters.add(waiter);
      });
    },
    close: () => session.destroy(),
  };
  stream.setEncoding('utf8');
  stream.on('data', (d: string) => {
    client.bytes += Buffer.byteLength(d);
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) !== -1) {
      messages.push(JSON.parse(buf.slice(0, nl)) as ControlMessage);
      buf = buf.slice(nl + 1);
    }
    for (const w of [...waiters]) w();
  });
  stream.on('error', () => {});
  return client;
}

const hello = (service: string, subscribe: string[]) => ({ type: 'hello', protocol: STREAM_PROTOCOL, proxyId: `${service}-${Math.random().toString(36).slice(2)}`, service, subscribe });
const svc = (name: string, extra: Record<string, unknown> = {}) => ({ apiVersion: 'mycel.dev/v1alpha1', kind: 'Service', metadata: { name, namespace: 'default' }, spec: { ports: [{ port: 80 }], ...extra } });

describe('config stream', () => {
  let dir: string;
  let cp: ControlPlane;
  let token: string;
  const apply = async (resources: unknown[]) => {
    const res = await fetch(`${cp.url}/api/v1/apply`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ resources }) });
    assert.equal(res.status, 200, await res.text());
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mycel-push-'));
    // Clear text: this file tests the push protocol; TLS is http-api/api-tls.test.ts's.
    cp = await ControlPlane.start({ store: new FileStore(dir, { log: silentLogger }), listen: { host: '127.0.0.1', port: 0 }, stateDir: null, expireRestored: true, insecureHttp: true, log: silentLogger, leaseMs: 5000 });
    token = cp.adminToken();
    await apply([svc('web'), svc('api'), svc('db'), svc('rare')]);
  });
  after(async () => {
    await cp.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('a proxy gets its scoped view once, and a new version only when its view changes', async () => {
    const c = connect(cp.url, token);
    c.send(hello('web', ['api']));
    await c.next((m) => m.type === 'welcome');
    const first = await c.next((m) => m.type === 'config');
    assert.ok(first.type === 'config');
    const names = first.resources.map((r) => (r as { metadata: { name: string } }).metadata.name).sort();
    assert.deepEqual(names, ['api', 'web'], 'only its own service and what it calls');
    c.send({ type: 'ack', version: first.version });
    // A change to a service web does not call sends web nothing ...
    await apply([svc('db', { hosts: ['db.example'] })]);
    // ... and a change to one it calls sends the next version.
    await apply([svc('api', { hosts: ['api.example'] })]);
    const second = await c.next((m) => m.type === 'config');
    assert.ok(second.type === 'config' && second.version > first.version);
    assert.match(JSON.stringify(second.resources), /api\.example/);
    // The mesh CA's trust message follows the welcome; nothing else may come.
    assert.equal(c.messages.filter((m) => m.type !== 'trust').length, 0, 'nothing else was sent');
    c.close();
  });

  test('a tap starts on every proxy (and on one that connects later), merges their events, and stops when its client goes', async () => {
    const [web, api] = [connect(cp.url, token), connect(cp.url, token)];
    web.send(hello('web', ['api']));
    api.send(hello('api', []));
    await Promise.all([web.next((m) => m.type === 'welcome'), api.next((m) => m.type === 'welcome')]);
    const res = await fetch(`${cp.url}/api/v1/tap?service=api&status=5xx&limit=3`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/x-ndjson');
    const started = await Promise.all([web, api].map((c) => c.next((m) => m.type === 'tap')));
    for (const m of started) assert.ok(m.type === 'tap' && m.action === 'start' && m.filter.service === 'api' && m.filter.status === '5xx');
    const id = (started[0] as { id: string }).id;
    const late = connect(cp.url, token);
    late.send(hello('db', []));
    const lateStart = await late.next((m) => m.type === 'tap');
    assert.ok(lateStart.type === 'tap' && lateStart.id === id && lateStart.action === 'start');
    const event = (proxy: string, path: string) => ({ time: Date.now(), proxy, direction: 'inbound', sourceService: 'web', destinationService: 'api', sourceIdentity: null, destinationIdentity: null, method: 'GET', authority: 'api', path, status: 503, grpcStatus: null, latencyMs: 1, route: null, endpoint: null, retries: 0, error: 'connect-failed', traceId: null });
    web.send({ type: 'tap-events', id, events: [event('spoofed', '/a'), event('spoofed', '/b')], dropped: 0 });
    api.send({ type: 'tap-events', id, events: [event('spoofed', '/c')], dropped: 4 });
    const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines.filter((l) => l.path !== undefined).map((l) => l.path).sort(), ['/a', '/b', '/c'], 'the limit ends the stream after 3 events');
    assert.deepEqual(lines.filter((l) => l.dropped !== undefined).map((l) => l.dropped), [4]);
    assert.ok(lines.filter((l) => l.path !== undefined).every((l) => /^(web|api)-/.test(String(l.proxy))), 'events name the stream they came on');
    // The client is gone: every proxy is told to stop, and events that crossed the stop get a stop of their own.
    for (const c of [web, api, late]) {
      const stop = await c.next((m) => m.type === 'tap');
      assert.ok(stop.type === 'tap' && stop.id === id && stop.action === 'stop');
    }
    web.send({ type: 'tap-events', id, events: [event('web-1', '/late')], dropped: 0 });
    const again = await web.next((m) => m.type === 'tap');
    assert.ok(again.type === 'tap' && again.action === 'stop');
    for (const c of [web, api, late]) c.close();
  });

  test('a tap needs a service and a valid filter', async () => {
    const get = async (q: string) => {
      const r = await fetch(`${cp.url}/api/v1/tap${q}`, { headers: { authorization: `Bearer ${token}` } });
      return { status: r.status, body: (await r.json()) as { message: string } };
    };
    assert.match((await get('')).body.message, /service is required/);
    const bad = await get('?service=api&direction=sideways');
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /direction/);
  });

  test('a NACKed version is not sent again; the next change brings the next one', async () => {
    const c = connect(cp.url, token);
    c.send(hello('web', ['rare']));
    const v1 = await c.next((m) => m.type === 'config');
    assert.ok(v1.type === 'config');
    c.send({ type: 'nack', version: v1.version, reason: 'cannot apply it here' });
    const status = await eventuallyStatus(cp.url, token, (items) => items.find((p) => p.nack?.reason === 'cannot apply it here'));
    assert.equal(status.state, 'NACK');
    // Unrelated writes and a reconnect-free wait: the NACKed version never comes back.
    await apply([svc('db', { hosts: ['db2.example'] })]);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(c.messages.filter((m) => m.type === 'config').length, 0);
    await apply([svc('rare', { hosts: ['rare.example'] })]);
    const v2 = await c.next((m) => m.type === 'config');
    assert.ok(v2.type === 'config' && v2.version > v1.version);
    c.send({ type: 'ack', version: v2.version });
    await eventuallyStatus(cp.url, token, (items) => items.find((p) => p.sentVersion === v2.version && p.state === 'ACK'));
    c.close();
  });

  test('proxies that ask for the same view get the same bytes, and views grow with what a proxy uses', async () => {
    const a = connect(cp.url, token);
    const b = connect(cp.url, token);
    const lone = connect(cp.url, token);
    a.send(hello('web', ['api', 'db']));
    b.send(hello('web', ['db', 'api']));
    lone.send(hello('web', []));
    const [ca, cb, cl] = await Promise.all([a.next((m) => m.type === 'config'), b.next((m) => m.type === 'config'), lone.next((m) => m.type === 'config')]);
    assert.equal(JSON.stringify(ca), JSON.stringify(cb));
    assert.ok(JSON.stringify(cl).length < JSON.stringify(ca).length);
    for (const c of [a, b, lone]) c.close();
  });

  test('a name no service answers to comes back as unresolved, and resolves once the service appears', async () => {
    const c = connect(cp.url, token);
    c.send(hello('web', []));
    await c.next((m) => m.type === 'config');
    c.send({ type: 'subscribe', names: ['later'] });
    const miss = await c.next((m) => m.type === 'config');
    assert.ok(miss.type === 'config');
    assert.deepEqual(miss.unresolved, ['later']);
    await apply([svc('later')]);
    const hit = await c.next((m) => m.type === 'config');
    assert.ok(hit.type === 'config');
    assert.deepEqual(hit.unresolved, []);
    assert.ok(hit.resources.some((r) => (r as { metadata: { name: string } }).metadata.name === 'later'));
    c.close();
  });

  test('bad input ends the stream with the reason', async () => {
    const notHello = connect(cp.url, token);
    notHello.send({ type: 'ack', version: 1 });
    const e1 = await notHello.next((m) => m.type === 'error');
    assert.ok(e1.type === 'error' && /first message must be hello/.test(e1.message));
    await notHello.ended;

    const garbage = connect(cp.url, token);
    garbage.raw('{"type": "hello", \n');
    const e2 = await garbage.next((m) => m.type === 'error');
    assert.ok(e2.type === 'error' && e2.code === 'bad-message');

    const wrongProtocol = connect(cp.url, token);
    wrongProtocol.send({ ...hello('web', []), protocol: 'mycel-stream-v0' });
    const e3 = await wrongProtocol.next((m) => m.type === 'error');
    assert.ok(e3.type === 'error' && /protocol/.test(e3.message));

    const huge = connect(cp.url, token);
    huge.raw('x'.repeat(5 * 1024 * 1024));
    const e4 = await huge.next((m) => m.type === 'error', 20_000);
    assert.ok(e4.type === 'error' && /exceeds/.test(e4.message));
    for (const c of [notHello, garbage, wrongProtocol, huge]) c.close();
  });

  test('the stream needs a token, and a join token only serves its own service', async () => {
    const res = await fetch(`${cp.url}/api/v1/proxies`);
    assert.equal(res.status, 401);
    const joined = await (await fetch(`${cp.url}/api/v1/tokens`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify({ service: 'api' }) })).json() as { token: string };
    const c = connect(cp.url, joined.token);
    c.send(hello('web', []));
    const e = await c.next((m) => m.type === 'error');
    assert.ok(e.type === 'error' && e.code === 'forbidden');
    // The join token cannot use the admin API either.
    assert.equal((await fetch(`${cp.url}/api/v1/resources`, { headers: { authorization: `Bearer ${joined.token}` } })).status, 403);
    c.close();
  });
});

describe('warm-up after a start with no other replica alive', () => {
  const dirs: string[] = [];
  const started: ControlPlane[] = [];
  const start = async (warmupMs: number, opts: { seedLiveReplica?: boolean } = {}) => {
    const dir = await mkdtemp(join(tmpdir(), 'mycel-warmup-'));
    dirs.push(dir);
    if (opts.seedLiveReplica === true) {
      // Another replica's announcement, as etcd holds it while that replica lives (its lease keeps it).
      const seed = new FileStore(dir, { log: silentLogger });
      await seed.open();
      await seed.commit([{ op: 'put', kind: REPLICA_KIND, namespace: 'mycel-system', name: 'other', value: { replica: 'other', url: 'http://127.0.0.1:9', startedAt: new Date().toISOString() }, ephemeral: true }]);
      await seed.close();
    }
    const cp = await ControlPlane.start({ store: new FileStore(dir, { log: silentLogger }), listen: { host: '127.0.0.1', port: 0 }, stateDir: null, expireRestored: opts.seedLiveReplica !== true, insecureHttp: true, log: silentLogger, leaseMs: 5000, warmupMs });
    started.push(cp);
    const token = cp.adminToken();
    const res = await fetch(`${cp.url}/api/v1/apply`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ resources: [svc('web'), svc('api')] }) });
    assert.equal(res.status, 200, await res.text());
    return { cp, token };
  };
  after(async () => {
    for (const cp of started) await cp.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  const endpointsOfApi = (m: ControlMessage) => {
    assert.ok(m.type === 'config');
    const api = m.resources.find((r) => (r as { metadata: { name: string } }).metadata.name === 'api') as { spec: { endpoints?: Array<{ port: number }> } };
    return (api.spec.endpoints ?? []).map((e) => e.port);
  };
  const apiSidecar = (port: number) => ({ ...hello('api', []), endpoint: { address: '127.0.0.1', port, labels: {} } });

  test('a running proxy keeps its config until the services it uses have endpoints again; a fresh one gets config at once', async () => {
    const { cp, token } = await start(60_000);
    const fresh = connect(cp.url, token);
    fresh.send(hello('web', ['api']));
    assert.deepEqual(endpointsOfApi(await fresh.next((m) => m.type === 'config')), [], 'a fresh proxy has nothing to lose: it gets the view as it is');

    const running = connect(cp.url, token);
    const runningHello = { ...hello('web', ['api']), version: 41 };
    running.send(runningHello);
    await running.next((m) => m.type === 'welcome');
    const held = await eventuallyStatus(cp.url, token, (items) => items.find((i) => i.proxyId === runningHello.proxyId && i.heldBack !== undefined));
    assert.match(held.heldBack?.reason ?? '', /default\/api has no endpoint yet/);
    assert.equal(held.state, 'NONE');
    assert.ok(!running.messages.some((m) => m.type === 'config'), 'no config while api has no endpoint');
    assert.match(cp.metrics.registry.render(), /mycel_control_warmup 1/);

    // api's sidecar comes back and registers: the held view is complete now and goes out.
    const api1 = connect(cp.url, token);
    api1.send(apiSidecar(4001));
    assert.deepEqual(endpointsOfApi(await running.next((m) => m.type === 'config')), [4001]);
    assert.deepEqual(endpointsOfApi(await fresh.next((m) => m.type === 'config')), [4001]);

    // Its last endpoint leaving during warm-up is held from the running proxy (not from the one that started fresh) ...
    api1.send({ type: 'goodbye' });
    assert.deepEqual(endpointsOfApi(await fresh.next((m) => m.type === 'config')), []);
    const again = await eventuallyStatus(cp.url, token, (items) => items.find((i) => i.proxyId === runningHello.proxyId && i.heldBack !== undefined));
    assert.match(again.heldBack?.reason ?? '', /default\/api would lose its last endpoint/);
    assert.ok(!running.messages.some((m) => m.type === 'config'));
    // ... and a new instance goes to both.
    const api2 = connect(cp.url, token);
    api2.send(apiSidecar(4002));
    assert.deepEqual(endpointsOfApi(await running.next((m) => m.type === 'config')), [4002]);
    for (const c of [fresh, running, api1, api2]) c.close();
  });

  test('when the warm-up ends, a held proxy gets the view as it is', async () => {
    const { cp, token } = await start(3000);
    const running = connect(cp.url, token);
    const runningHello = { ...hello('web', ['api']), version: 7 };
    running.send(runningHello);
    await eventuallyStatus(cp.url, token, (items) => items.find((i) => i.proxyId === runningHello.proxyId && i.heldBack !== undefined));
    assert.deepEqual(endpointsOfApi(await running.next((m) => m.type === 'config', 20_000)), []);
    assert.match(cp.metrics.registry.render(), /mycel_control_warmup 0/);
    assert.match(cp.metrics.registry.render(), /mycel_control_pushes_held_total 1/);
    running.close();
  });

  test('no warm-up when another replica is alive: its proxies kept the stored endpoints current', async () => {
    const { cp, token } = await start(60_000, { seedLiveReplica: true });
    assert.match(cp.metrics.registry.render(), /mycel_control_warmup 0/);
    const running = connect(cp.url, token);
    running.send({ ...hello('web', ['api']), version: 3 });
    assert.deepEqual(endpointsOfApi(await running.next((m) => m.type === 'config')), []);
    running.close();
  });
});

type ProxyItem = { proxyId: string; heldBack?: { reason: string }; state: string; sentVersion: number | null; nack: { reason: string } | null };

async function eventuallyStatus(url: string, token: string, pick: (items: ProxyItem[]) => ProxyItem | undefined): Promise<ProxyItem> {
  for (let i = 0; i < 100; i++) {
    const r = (await (await fetch(`${url}/api/v1/proxies`, { headers: { authorization: `Bearer ${token}` } })).json()) as { items: ProxyItem[] };
    const found = pick(r.items);
    if (found !== undefined) return found;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error('proxy status never matched');
}
