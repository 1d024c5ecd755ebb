// HTTP/2 end to end: h2c prior-knowledge clients (node:http2, curl, h2load) -> web sidecar -> mTLS -> api sidecar ->
// h2c app; stream multiplexing, flow control on large bodies, and h2 -> HTTP/1.1 conversion for an HTTP/1.1 app.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { patternSha256, startH2App, startHttpApp, type TestApp } from '../helpers/apps.js';
import { startTwoSidecars, type TwoSidecars } from '../helpers/sidecars.js';
import { requirePackage, run, sha256, closedPort } from '../helpers/http.js';

interface H2Reply {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
  trailers: http2.IncomingHttpHeaders | null;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

function connect(addr: string): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(`http://${addr}`);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** One request on an existing session; `onData` may pause the stream to read slowly. */
function h2request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: Buffer | null,
  opts: { timeoutMs?: number; onData?: (stream: http2.ClientHttp2Stream, chunk: Buffer) => void; collect?: boolean } = {},
): Promise<H2Reply & { bytes: number; sha: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined || body === null });
    const chunks: Buffer[] = [];
    const hash = createHash('sha256');
    let bytes = 0;
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | null = null;
    const timer = setTimeout(() => stream.close(http2.constants.NGHTTP2_CANCEL), opts.timeoutMs ?? 30_000);
    stream.on('response', (h) => (head = h));
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (d: Buffer) => {
      bytes += d.length;
      hash.update(d);
      if (opts.collect !== false) chunks.push(d);
      opts.onData?.(stream, d);
    });
    stream.on('end', () => {
      clearTimeout(timer);
      resolve({ status: Number(head[':status']), headers: head, body: Buffer.concat(chunks), trailers, bytes, sha: hash.digest('hex') });
    });
    stream.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    stream.on('close', () => {
      clearTimeout(timer);
      if (!stream.readableEnded) reject(new Error(`stream closed without end (rst code ${stream.rstCode})`));
    });
    if (body !== undefined && body !== null) {
      let i = 0;
      const piece = 64 * 1024;
      const pump = () => {
        while (i < body.length) {
          const ok = stream.write(body.subarray(i, i + piece));
          i += piece;
          if (!ok) {
            stream.once('drain', pump);
            return;
          }
        }
        stream.end();
      };
      pump();
    }
  });
}

describe('HTTP/2 through two sidecars (api port declared http2, h2c app)', () => {
  let app: TestApp;
  let mesh: TwoSidecars;

  before(async () => {
    app = await startH2App();
    mesh = await startTwoSidecars({ apiAppPort: app.port, apiProtocol: 'http2' });
  });
  after(async () => {
    await mesh?.close();
    await app?.close();
  });

  const entries: Array<{ name: string; addr: () => string; authority: string | undefined }> = [
    { name: 'upstream binding', addr: () => mesh.apiBinding, authority: undefined },
    { name: 'outbound listener with :authority api', addr: () => mesh.web.outbound, authority: 'api' },
  ];

  for (const entry of entries) {
    const base = (path: string, method = 'GET'): http2.OutgoingHttpHeaders => ({ ':method': method, ':path': path, ...(entry.authority ? { ':authority': entry.authority } : {}) });

    test(`${entry.name}: 200 parallel streams on one connection are all answered correctly`, async () => {
      const session = await connect(entry.addr());
      try {
        const replies = await Promise.all(Array.from({ length: 200 }, (_, i) => h2request(session, base(`/hello?i=${i}`))));
        replies.forEach((r, i) => {
          assert.equal(r.status, 200, `stream ${i}`);
          assert.equal(r.headers['x-app'], 'h2');
          assert.equal(r.body.toString(), `hello h2 GET /hello?i=${i} bytes=0\n`);
        });
      } finally {
        session.close();
      }
    });

    test(`${entry.name}: a 32 MiB response to a slowly reading client arrives intact (flow control end to end)`, async () => {
      const n = 32 * 1024 * 1024;
      const session = await connect(entry.addr());
      let maxRss = 0;
      try {
        let k = 0;
        const r = await h2request(session, base(`/big?n=${n}`), null, {
          timeoutMs: 120_000,
          collect: false,
          onData: (stream, _chunk) => {
            // Read slowly for the first part: pause now and then so that windows close and buffers upstream fill.
            if (++k % 64 === 0 && k < 64 * 16) {
              stream.pause();
              maxRss = Math.max(maxRss, rssMb(mesh.web.proc.pid!), rssMb(mesh.api.proc.pid!));
              setTimeout(() => stream.resume(), 30);
            }
          },
        });
        assert.equal(r.status, 200);
        assert.equal(r.bytes, n);
        assert.equal(r.sha, patternSha256(n));
        assert.ok(maxRss > 0 && maxRss < 250, `sidecar RSS stayed bounded while 32 MiB passed (max ${maxRss.toFixed(0)} MB)`);
      } finally {
        session.close();
      }
    });

    test(`${entry.name}: a 32 MiB upload arrives intact`, async () => {
      const body = Buffer.alloc(32 * 1024 * 1024);
      for (let i = 0; i < body.length; i += 4) body.writeUInt32LE((i ^ 0x9e3779b9) >>> 0, i);
      const session = await connect(entry.addr());
      try {
        const path = `/upload?entry=${encodeURIComponent(entry.name)}`;
        const r = await h2request(session, { ...base(path, 'POST'), 'content-type': 'application/octet-stream' }, body, { timeoutMs: 120_000 });
        assert.equal(r.status, 200);
        assert.equal(r.body.toString(), `hello h2 POST ${path} bytes=${body.length}\n`);
        const seen = app.seen.find((s) => s.url === path);
        assert.equal(seen?.bodySha256, sha256(body), 'the app received exactly the uploaded bytes');
      } finally {
        session.close();
      }
    });
  }

  test('curl --http2-prior-knowledge through the binding and through the outbound listener', async (t) => {
    if (!(await requirePackage(t, 'curl', 'curl'))) return;
    const viaBinding = await run('curl', ['-sS', '--http2-prior-knowledge', '-w', '\n%{http_version} %{http_code}', `http://${mesh.apiBinding}/hello?via=curl`]);
    assert.equal(viaBinding.stdout, 'hello h2 GET /hello?via=curl bytes=0\n\n2 200', viaBinding.stderr);
    const [host, port] = mesh.web.outbound.split(':') as [string, string];
    const viaOutbound = await run('curl', ['-sS', '--http2-prior-knowledge', '--connect-to', `api:80:${host}:${port}`, '-w', '\n%{http_version} %{http_code}', '-d', 'abc', 'http://api/hello?via=outbound']);
    assert.equal(viaOutbound.stdout, 'hello h2 POST /hello?via=outbound bytes=3\n\n2 200', viaOutbound.stderr);
  });

  test('h2load: 2000 requests over 4 connections with 20 streams each all succeed', async (t) => {
    if (!(await requirePackage(t, 'h2load', 'nghttp2-client'))) return;
    const r = await run('h2load', ['-n', '2000', '-c', '4', '-m', '20', `http://${mesh.apiBinding}/`], undefined, 120_000);
    const m = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(r.stdout);
    assert.ok(m, `h2load printed a requests line:\n${r.stdout}\n${r.stderr}`);
    assert.deepEqual({ total: m[1], done: m[3], succeeded: m[4], failed: m[5], errored: m[6], timeout: m[7] }, { total: '2000', done: '2000', succeeded: '2000', failed: '0', errored: '0', timeout: '0' }, r.stdout);
    assert.match(r.stdout, /status codes: 2000 2xx/);
  });
});

describe('HTTP/2 clients to an HTTP/1.1 app (h2 -> HTTP/1.1 conversion at the server-side sidecar)', () => {
  let app: TestApp;
  let mesh: TwoSidecars;

  before(async () => {
    app = await startHttpApp();
    mesh = await startTwoSidecars({ apiAppPort: app.port, apiProtocol: 'http' });
  });
  after(async () => {
    await mesh?.close();
    await app?.close();
  });

  for (const via of ['binding', 'outbound'] as const) {
    test(`h2c client via the ${via}: GETs, a POST echo, and response trailers come back as HTTP/2`, async () => {
      const session = await connect(via === 'binding' ? mesh.apiBinding : mesh.web.outbound);
      const auth = via === 'outbound' ? { ':authority': 'api' } : {};
      try {
        const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => h2request(session, { ':method': 'GET', ':path': `/hello?i=${i}`, ...auth })));
        replies.forEach((r, i) => {
          assert.equal(r.status, 200);
          assert.equal(r.headers['x-app'], 'http1', 'answered by the HTTP/1.1 app');
          assert.equal(r.body.toString(), `hello GET /hello?i=${i}\n`);
        });
        const body = Buffer.alloc(200_000, 'h2 to h1 ');
        const echo = await h2request(session, { ':method': 'POST', ':path': '/echo', ...auth }, body);
        assert.equal(echo.status, 200);
        assert.equal(sha256(echo.body), sha256(body));
        const seen = app.seen[app.seen.length - 1]!;
        assert.equal(seen.bodySha256, sha256(body));
        assert.equal(seen.headers['x-mycel-peer-identity'], 'spiffe://mycel.local/ns/default/svc/web');
        if (via === 'outbound') assert.equal(seen.headers.host, 'api');
        const tr = await h2request(session, { ':method': 'GET', ':path': '/trailers', te: 'trailers', ...auth });
        assert.equal(tr.body.toString(), 'body with trailers');
        assert.equal(tr.trailers?.['x-trailer-one'], 'yes', 'HTTP/1.1 chunked trailers become HTTP/2 trailers');
        const st = await h2request(session, { ':method': 'GET', ':path': '/status/404', ...auth });
        assert.equal(st.status, 404);
        assert.equal(st.body.toString(), 'status 404\n');
      } finally {
        session.close();
      }
    });
  }
});

describe('HTTP/2 when the h2c app behind api is down', () => {
  let mesh: TwoSidecars;

  before(async () => {
    const port = await closedPort();
    mesh = await startTwoSidecars({ apiAppPort: port, apiProtocol: 'http2' });
  });
  after(async () => {
    await mesh?.close();
  });

  test('an h2c request gets 503 with x-mycel-error: connect-failed from the server-side sidecar', async () => {
    const session = await connect(mesh.apiBinding);
    try {
      const r = await h2request(session, { ':method': 'GET', ':path': '/hello' });
      assert.equal(r.status, 503, r.body.toString());
      assert.equal(r.headers['x-mycel-error'], 'connect-failed', r.body.toString());
    } finally {
      session.close();
    }
  });
});
