// HTTP/1.1 end to end: client -> web sidecar -> mTLS -> api sidecar -> app, with both ways HTTP/1.1 can travel
// between sidecars (pooled HTTP/1.1, or multiplexed as HTTP/2), using node:http, curl and undici as real clients.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { EnvHttpProxyAgent, fetch as undiciFetch } from 'undici';
import { startHttpApp, patternSha256, type TestApp } from '../helpers/apps.js';
import { startTwoSidecars, type TwoSidecars } from '../helpers/sidecars.js';
import { request, requirePackage, run, sha256 } from '../helpers/http.js';

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

for (const transport of ['h1', 'h2'] as const) {
  describe(`HTTP/1.1 through two sidecars (HTTP/1.1 carried as ${transport} between them)`, () => {
    let app: TestApp;
    let mesh: TwoSidecars;
    before(async () => {
      app = await startHttpApp();
      mesh = await startTwoSidecars({ apiAppPort: app.port, apiProtocol: 'http', transportHttp1: transport });
    });
    after(async () => {
      await mesh?.close();
      await app?.close();
    });

    test('Host-header routing answers from the app and tells the app who called', async () => {
      const r = await request(mesh.web.outbound, { path: '/headers', headers: { host: 'api', 'x-mycel-peer-identity': 'spiffe://forged/ns/x/svc/evil' } });
      assert.equal(r.status, 200);
      const seen = JSON.parse(r.body.toString()) as { headers: Record<string, string> };
      assert.equal(seen.headers['x-mycel-peer-identity'], 'spiffe://mycel.local/ns/default/svc/web', 'the forged identity is replaced by the verified one');
      assert.equal(seen.headers.host, 'api');
      assert.equal(seen.headers['mycel-orig-proto'], undefined, 'mesh-internal fields never reach the app');
    });

    test('keep-alive: many requests on one client connection', async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const sockets = new Set<unknown>();
      for (let i = 0; i < 30; i++) {
        const r = await request(mesh.web.outbound, { path: `/hello?i=${i}`, headers: { host: 'api' }, agent });
        assert.equal(r.status, 200);
        assert.equal(r.body.toString(), `hello GET /hello?i=${i}\n`);
      }
      agent.destroy();
      sockets.clear();
    });

    test('chunked request and response bodies stream both ways intact', async () => {
      const body = Buffer.alloc(300_000, 'abcdefghij');
      const r = await new Promise<{ status: number; body: Buffer; te: string | undefined }>((resolve, reject) => {
        const [host, port] = mesh.web.outbound.split(':');
        const req = http.request({ host, port: Number(port), method: 'POST', path: '/echo', headers: { host: 'api', 'transfer-encoding': 'chunked' } }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (d: Buffer) => chunks.push(d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), te: res.headers['transfer-encoding'] }));
        });
        req.on('error', reject);
        for (let i = 0; i < body.length; i += 10_000) req.write(body.subarray(i, i + 10_000));
        req.end();
      });
      assert.equal(r.status, 200);
      assert.equal(r.te, 'chunked');
      assert.equal(sha256(r.body), sha256(body));
      const last = app.seen[app.seen.length - 1]!;
      assert.equal(last.bodySha256, sha256(body));
      assert.equal(last.headers['content-length'], undefined);
    });

    test('a 64 MiB download to a slow reader is streamed with backpressure (sidecar memory stays bounded)', async () => {
      const n = 64 * 1024 * 1024;
      const [host, port] = mesh.web.outbound.split(':');
      let maxRss = 0;
      const got = await new Promise<{ bytes: number; hash: string }>((resolve, reject) => {
        const req = http.request({ host, port: Number(port), path: `/big?n=${n}`, headers: { host: 'api' } }, (res) => {
          const h = createHash('sha256');
          let bytes = 0;
          let k = 0;
          res.on('data', (d: Buffer) => {
            bytes += d.length;
            h.update(d);
            // Read slowly at first: pause every 4 MiB for a moment so that buffers upstream fill up.
            if (++k % 64 === 0 && bytes < 24 * 1024 * 1024) {
              res.pause();
              maxRss = Math.max(maxRss, rssMb(mesh.web.proc.pid!), rssMb(mesh.api.proc.pid!));
              setTimeout(() => res.resume(), 30);
            }
          });
          res.on('end', () => resolve({ bytes, hash: h.digest('hex') }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(got.bytes, n);
      assert.equal(got.hash, patternSha256(n));
      assert.ok(maxRss > 0 && maxRss < 200, `sidecar RSS stayed under 200 MB while 64 MiB passed (max ${maxRss.toFixed(0)} MB)`);
    });

    test('a 16 MiB upload with Content-Length arrives intact', async () => {
      const body = Buffer.alloc(16 * 1024 * 1024, 7);
      const r = await request(mesh.web.outbound, { method: 'PUT', path: '/echo', headers: { host: 'api', 'content-length': String(body.length) }, body });
      assert.equal(r.status, 200);
      assert.equal(r.body.length, body.length);
      assert.equal(r.headers['x-request-content-length'], String(body.length));
    });

    test('Expect: 100-continue: the app decides, the client sends the body only after 100', async () => {
      const [host, port] = mesh.web.outbound.split(':');
      const ok = await new Promise<{ continued: boolean; status: number; body: string }>((resolve, reject) => {
        let continued = false;
        const req = http.request({ host, port: Number(port), method: 'POST', path: '/echo', headers: { host: 'api', expect: '100-continue', 'content-length': '5' } }, (res) => {
          let b = '';
          res.on('data', (d) => (b += d));
          res.on('end', () => resolve({ continued, status: res.statusCode ?? 0, body: b }));
        });
        req.on('continue', () => {
          continued = true;
          req.end('hello');
        });
        req.on('error', reject);
        req.flushHeaders();
      });
      assert.deepEqual(ok, { continued: true, status: 200, body: 'hello' });

      const before = app.seen.length;
      const refused = await new Promise<{ continued: boolean; status: number }>((resolve, reject) => {
        let continued = false;
        const req = http.request({ host, port: Number(port), method: 'POST', path: '/reject-continue', headers: { host: 'api', expect: '100-continue', 'content-length': '5' } }, (res) => {
          res.resume();
          res.on('end', () => resolve({ continued, status: res.statusCode ?? 0 }));
        });
        req.on('continue', () => {
          continued = true;
          req.end('hello');
        });
        req.on('error', reject);
        req.flushHeaders();
      });
      assert.deepEqual(refused, { continued: false, status: 417 });
      assert.equal(app.seen.length, before + 1);
      assert.equal(app.seen[before]!.bodyBytes, 0, 'the refused body never reached the app');
    });

    test('HEAD has no body but keeps the headers', async () => {
      const r = await request(mesh.web.outbound, { method: 'HEAD', path: `/big?n=1000`, headers: { host: 'api' } });
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-length'], '1000');
      assert.equal(r.body.length, 0);
    });

    test('response trailers and repeated Set-Cookie fields survive', async () => {
      const r = await request(mesh.web.outbound, { path: '/trailers', headers: { host: 'api', te: 'trailers' } });
      assert.equal(r.body.toString(), 'body with trailers');
      assert.equal(r.trailers['x-trailer-one'], 'yes');
      const c = await request(mesh.web.outbound, { path: '/cookies', headers: { host: 'api' } });
      assert.deepEqual(c.headers['set-cookie'], ['a=1', 'b=2']);
    });

    {
      test('request trailers reach the app (chunked upload with a trailer)', async () => {
        const [host, port] = mesh.web.outbound.split(':');
        const r = await new Promise<NodeJS.Dict<string>>((resolve, reject) => {
          const req = http.request({ host, port: Number(port), method: 'POST', path: '/echo', headers: { host: 'api', trailer: 'x-checksum', te: 'trailers' } }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.trailers));
          });
          req.on('error', reject);
          req.write('some body');
          req.addTrailers({ 'x-checksum': 'abc123' });
          req.end();
        });
        assert.equal(app.seen[app.seen.length - 1]!.trailers['x-checksum'], 'abc123');
        assert.equal(r['x-echo-checksum'], 'abc123');
      });
    }

    test('curl as an HTTP forward proxy client (absolute-form) and with HTTP_PROXY', async (t) => {
      if (!(await requirePackage(t, 'curl', 'curl'))) return;
      const viaFlag = await run('curl', ['-sS', '-x', `http://${mesh.web.outbound}`, 'http://api/hello?via=x']);
      assert.equal(viaFlag.stdout, 'hello GET /hello?via=x\n', viaFlag.stderr);
      const env = await run('sh', ['-c', `http_proxy=http://${mesh.web.outbound} curl -sS http://api:80/hello?via=env`]);
      assert.equal(env.stdout, 'hello GET /hello?via=env\n', env.stderr);
      const tunnel = await run('curl', ['-sS', '-p', '-x', `http://${mesh.web.outbound}`, 'http://api/hello?via=connect']);
      assert.equal(tunnel.stdout, 'hello GET /hello?via=connect\n', tunnel.stderr);
    });

    test("undici's EnvHttpProxyAgent goes through the sidecar unchanged", async () => {
      const agent = new EnvHttpProxyAgent({ httpProxy: `http://${mesh.web.outbound}`, noProxy: '' });
      const res = await undiciFetch('http://api/hello?via=undici', { dispatcher: agent });
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'hello GET /hello?via=undici\n');
      await agent.close();
    });

    test('pipelined requests on one connection are answered in order', async () => {
      const [host, port] = mesh.web.outbound.split(':');
      const text = await new Promise<string>((resolve, reject) => {
        const s = net.connect(Number(port), host, () => {
          s.write('GET /hello?n=1 HTTP/1.1\r\nHost: api\r\n\r\nGET /hello?n=2 HTTP/1.1\r\nHost: api\r\n\r\nGET /hello?n=3 HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n');
        });
        let out = '';
        s.on('data', (d) => (out += d));
        s.on('end', () => resolve(out));
        s.on('error', reject);
      });
      const bodies = [...text.matchAll(/hello GET \/hello\?n=(\d)/g)].map((m) => m[1]);
      assert.deepEqual(bodies, ['1', '2', '3']);
    });
  });
}

