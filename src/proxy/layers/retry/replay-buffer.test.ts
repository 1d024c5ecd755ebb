import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { request, sha256 } from '../../../../test/helpers/http.js';
import { ReplayBuffer } from './index.js';

function collect(stream: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

const servers: http.Server[] = [];
after(() => {
  for (const s of servers) s.close();
});

/** A real server whose handler reads each request body through a ReplayBuffer: part of it once, then all of it twice. */
async function replayServer(limit: number) {
  const server = http.createServer((req, res) => {
    const replay = new ReplayBuffer(req, limit);
    const first = replay.nextAttempt();
    first.once('data', () => {
      // The first attempt "fails" after its first chunk; the retry must still see the whole body.
      const second = replay.nextAttempt();
      void collect(second).then(async (body) => {
        const third = replay.replayable ? await collect(replay.nextAttempt()) : null;
        res.end(JSON.stringify({ sha: sha256(body), again: third === null ? null : sha256(third), replayable: replay.replayable, read: replay.bytesRead }));
      });
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

test('a retry replays the body from a real socket: recorded bytes first, then the rest as it arrives', async () => {
  const addr = await replayServer(64 * 1024);
  const body = randomBytes(60 * 1024);
  const reply = await request(addr, { method: 'POST', body, headers: { 'content-length': body.length } });
  const out = JSON.parse(reply.body.toString()) as { sha: string; again: string; replayable: boolean; read: number };
  assert.deepEqual(out, { sha: sha256(body), again: sha256(body), replayable: true, read: body.length });
});

test('a body over the limit streams through once and is not replayable', async () => {
  const addr = await replayServer(64 * 1024);
  const body = randomBytes(200 * 1024);
  const reply = await request(addr, { method: 'POST', body, headers: { 'content-length': body.length } });
  const out = JSON.parse(reply.body.toString()) as { sha: string; again: string | null; replayable: boolean };
  assert.equal(out.sha, sha256(body), 'the attempt that started before the limit was crossed gets everything');
  assert.equal(out.replayable, false);
  assert.equal(out.again, null);
});

test('a second attempt while the body still streams; the first attempt gets nothing more', async () => {
  const source = new PassThrough();
  const replay = new ReplayBuffer(source, 10);
  const first = replay.nextAttempt();
  const firstChunks: string[] = [];
  first.on('data', (d: Buffer) => firstChunks.push(d.toString()));
  const firstClosed = new Promise((r) => first.on('close', r));
  source.write('abc');
  source.write('def');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(firstChunks, ['abc', 'def']);
  const second = replay.nextAttempt();
  await firstClosed;
  const all = collect(second);
  source.write('gh');
  source.end('ij');
  assert.equal((await all).toString(), 'abcdefghij');
  assert.deepEqual(firstChunks, ['abc', 'def']);
  assert.equal(replay.replayable, true, '10 bytes is within a 10-byte limit');
  assert.equal(replay.complete, true);
  assert.equal((await collect(replay.nextAttempt())).toString(), 'abcdefghij');
  replay.release();
  assert.equal(replay.replayable, false);
  assert.throws(() => replay.nextAttempt(), /no longer be replayed/);
});

test('a client that fails mid-body fails the current attempt and ends replays', async () => {
  const source = new PassThrough();
  const replay = new ReplayBuffer(source);
  const attempt = collect(replay.nextAttempt());
  source.write('partial');
  await new Promise((r) => setImmediate(r));
  source.destroy(new Error('client went away'));
  await assert.rejects(attempt, /client went away/);
  assert.equal(replay.replayable, false);
});

test('an empty body and a body that ended before the first attempt both replay', async () => {
  const empty = new PassThrough();
  empty.end();
  const r1 = new ReplayBuffer(empty);
  assert.equal((await collect(r1.nextAttempt())).length, 0);
  assert.equal((await collect(r1.nextAttempt())).length, 0);
  const early = new PassThrough();
  early.end('early');
  const r2 = new ReplayBuffer(early);
  await new Promise((r) => setImmediate(r));
  assert.equal((await collect(r2.nextAttempt())).toString(), 'early');
  assert.equal((await collect(r2.nextAttempt())).toString(), 'early');
});

test('a request body the client cuts off fails the attempt and is no longer replayable', async () => {
  let settle!: (v: { error: string | null; replayable: boolean }) => void;
  const outcome = new Promise<{ error: string | null; replayable: boolean }>((r) => (settle = r));
  const server = http.createServer((req) => {
    const replay = new ReplayBuffer(req, 64 * 1024);
    const attempt = replay.nextAttempt();
    attempt.on('data', () => {});
    attempt.on('end', () => settle({ error: null, replayable: replay.replayable }));
    attempt.on('error', (err) => settle({ error: err.message, replayable: replay.replayable }));
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as net.AddressInfo;
  const client = http.request({ host: '127.0.0.1', port, method: 'POST', headers: { 'content-length': '1000' } });
  client.on('error', () => {});
  client.write(Buffer.alloc(100));
  setTimeout(() => client.destroy(), 50);
  const got = await outcome;
  assert.notEqual(got.error, null, 'the attempt body errors instead of ending as if complete');
  assert.equal(got.replayable, false);
});
