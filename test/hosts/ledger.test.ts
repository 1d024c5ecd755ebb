// The ledger catches what it is there to catch: between the load and the real ledger app sits a deliberately bad
// "mesh" that answers some requests with a mesh error, some with a bare 502, some with a cut-off body, runs some
// POSTs twice and truncates one POST body on its way to the app. Every kind must show up in the report.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LEDGER_APP, Ledger, ledgerLine, ledgerViolations } from './ledger.js';

/** Sends the request on to the app (twice when asked, with a shorter body when asked) and returns its answer. */
function forward(appPort: number, req: http.IncomingMessage, body: Buffer, res: http.ServerResponse, how: { twice?: boolean; cut?: boolean; corrupt?: boolean }): void {
  const send = (done: (r: http.IncomingMessage, b: Buffer) => void) => {
    const sent = how.cut === true ? body.subarray(0, body.length >> 1) : body;
    const headers = { ...req.headers, 'content-length': String(sent.length) };
    const up = http.request({ host: '127.0.0.1', port: appPort, method: req.method, path: req.url, headers }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => done(r, Buffer.concat(chunks)));
    });
    up.end(sent);
  };
  send((r, b) => {
    const answer = () => {
      const out = how.corrupt === true && b.length > 0 ? Buffer.concat([b.subarray(1), Buffer.from('x')]) : b;
      res.writeHead(r.statusCode ?? 500, { 'x-ledger-length': String(r.headers['x-ledger-length']), 'x-ledger-sha256': String(r.headers['x-ledger-sha256']), 'content-length': out.length });
      res.end(out);
    };
    if (how.twice === true) send(() => answer());
    else answer();
  });
}

test('the ledger counts mesh errors by reason and finds lost, corrupt, duplicated and truncated requests', { timeout: 60_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mycel-ledger-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const appFile = join(dir, 'app.cjs');
  await writeFile(appFile, LEDGER_APP);
  const app = spawn(process.execPath, [appFile], { env: { ...process.env, NAME: 'app', HOST: '127.0.0.1', PORT: '0' }, stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => app.kill('SIGKILL'));
  const appPort = await new Promise<number>((resolve, reject) => {
    app.stdout.once('data', (d: Buffer) => {
      const m = /ledger app ready (\d+)/.exec(d.toString());
      if (m === null) reject(new Error(`unexpected first line: ${d.toString()}`));
      else resolve(Number(m[1]));
    });
  });
  const ledger = new Ledger('selftest');
  ledger.watchApp(app.stdout);

  // Request i of the load: GET when even, POST when odd; the bad mesh picks its mischief by i.
  const mesh = http.createServer((req, res) => {
    const i = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('id')?.split('-').pop());
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (i === 2 || i === 4) return res.writeHead(503, { 'x-mycel-error': 'connect-failed: refused' }).end();
      if (i === 6) return res.writeHead(504, { 'x-mycel-error': 'response-timeout' }).end();
      if (i === 8) return res.writeHead(502).end('bare gateway error');
      forward(appPort, req, body, res, { twice: i === 3, cut: i === 5, corrupt: i === 10 });
    });
  });
  await new Promise<void>((r) => mesh.listen(0, '127.0.0.1', r));
  t.after(() => mesh.close());

  ledger.start({ target: `127.0.0.1:${(mesh.address() as AddressInfo).port}`, rate: 100, deadlineMs: 5000, maxDurationMs: 200, sizes: [100, 2000] });
  await ledger.finished();
  await ledger.stop();
  const r = ledger.report();
  t.diagnostic(ledgerLine(r));

  assert.equal(r.sent, 20);
  assert.deepEqual(r.byReason, { 'connect-failed': 2, 'response-timeout': 1 });
  assert.equal(r.failed, 3);
  // The bare 502, the corrupt body, and the POST whose body was cut (the app refuses it with 422, no mesh error).
  assert.equal(r.lost, 3, r.lostSamples.join('; '));
  assert.deepEqual(r.duplicated, ['selftest-3']);
  assert.deepEqual(r.truncated, ['selftest-5']);
  assert.equal(r.ok, 20 - 3 - 3);
  // A POST answered 2xx but executed twice is also reported as not executed exactly once.
  assert.deepEqual(r.unexecutedOk, ['selftest-3']);
  const violations = ledgerViolations(r);
  assert.equal(violations.length, 4, violations.join('\n'));
  assert.match(violations.join('\n'), /3 requests lost/);
});
