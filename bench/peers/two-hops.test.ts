// The nginx and HAProxy two-hop paths placed on addresses of their own (as bench/hosts.ts places them on two hosts):
// hop A listens where it is told, reaches hop B at hop B's address over mTLS, and hop B listens only there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requirePackage } from '../../test/helpers/http.js';
import { makeCerts } from '../lib/certs.js';
import { freePorts, portAccepts } from '../lib/processes.js';
import { haproxyTwoHops } from './haproxy.js';
import { nginxTwoHops } from './nginx.js';
import type { BenchEnv } from './peer.js';
import { startTwoHops } from './two-hops.js';

const A_HOST = '127.0.0.3';
const B_HOST = '127.0.0.2';

function get(host: string, port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: '/placed', headers: { host: 'api' }, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

for (const [name, spec] of [['nginx', nginxTwoHops], ['haproxy', haproxyTwoHops]] as const) {
  test(`${name}: a placed two-hop path listens and forwards on the addresses it is given`, async (t) => {
    if (!(await requirePackage(t, name, name))) return;
    const dir = mkdtempSync(join(tmpdir(), `mycel-two-hops-${name}-`));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    // The app answers with what hop B sent it, so the test sees the request crossed both hops.
    const app = createServer((req, res) => res.end(`app got ${req.url} for ${req.headers.host}`));
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
    t.after(() => app.close());
    const appPort = (app.address() as { port: number }).port;
    const env: BenchEnv = { tmpDir: dir, certs: await makeCerts(dir), cpuLoad: null, cpuProxy: null, upstream: { http1: appPort, h2c: 0, grpc: 0, tcp: 0 } };
    const [a, b] = (await freePorts(2)) as [number, number];
    const inst = await startTwoHops(spec('http1', env), 'http1', env, {
      ports: { a, b, aHost: A_HOST, bHost: B_HOST },
      a: { prefix: [], reachAt: A_HOST },
      b: { prefix: [], reachAt: B_HOST },
    });
    t.after(() => inst.stop());
    assert.equal(inst.port, a);
    assert.equal(inst.processes.length, 2);
    const res = await get(A_HOST, a);
    assert.equal(res.status, 200);
    assert.equal(res.body, 'app got /placed for api');
    // Neither hop listens on the default loopback address.
    assert.equal(await portAccepts(a, 500, '127.0.0.1'), false);
    assert.equal(await portAccepts(b, 500, '127.0.0.1'), false);
    // Hop B takes TLS only: a plain-text request does not get through to the app.
    const plain = await get(B_HOST, b).catch(() => ({ status: 0, body: '' }));
    assert.notEqual(plain.body, 'app got /placed for api');
  });
}
