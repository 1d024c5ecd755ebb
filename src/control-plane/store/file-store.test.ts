// The file store on real files and processes: CRUD and revisions, expectations, watch order, reopen and snapshot
// rotation, torn and damaged WAL records, kill -9 during a stream of commits, a full disk, and the owner lock.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createLogger, silentLogger, type Logger } from '../../core/log.js';
import { FileStore, type FileStoreOptions } from './file-store.js';
import { StoreError, type StoreEvent, type StoreOp } from './store.js';
import { encodeBatch, scanRecords } from './wal-record.js';

const CHILD = fileURLToPath(new URL('../../../test/helpers/store-commit-loop.js', import.meta.url));
const roots: string[] = [];
after(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'mycel-file-store-'));
  roots.push(d);
  return d;
}

async function opened(dir: string, options: FileStoreOptions = {}): Promise<FileStore> {
  const s = new FileStore(dir, { log: silentLogger, ...options });
  await s.open();
  return s;
}

/** Opens, uses, closes. */
async function peek<T>(dir: string, use: (s: FileStore) => T | Promise<T>): Promise<T> {
  const s = await opened(dir);
  try {
    return await use(s);
  } finally {
    await s.close();
  }
}

function capturingLog(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { lines, log: createLogger({ level: 'debug', sink: (l) => lines.push(JSON.parse(l) as Record<string, unknown>) }) };
}

const put = (name: string, value: unknown, kind = 'Service', namespace = 'default'): StoreOp => ({ op: 'put', kind, namespace, name, value });
const del = (name: string, kind = 'Service', namespace = 'default'): StoreOp => ({ op: 'delete', kind, namespace, name });

async function rejectsWith(p: Promise<unknown>, code: string, text?: RegExp): Promise<StoreError> {
  const err = await p.then(
    () => assert.fail(`expected a StoreError '${code}'`),
    (e: unknown) => e,
  );
  assert.ok(err instanceof StoreError, `expected a StoreError, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  if (text) assert.match(err.message, text);
  return err;
}

describe('FileStore: commits and reads', () => {
  it('puts, gets, lists sorted, deletes, with one revision per commit', async () => {
    const s = await opened(tempDir());
    assert.equal(s.revision(), 0);
    assert.equal(await s.commit([put('web', { port: 80 }), put('api', { port: 81 }), put('r1', { rules: [] }, 'HTTPRoute')]), 1);
    assert.equal(await s.commit([put('db', { port: 5432 }, 'Service', 'data')]), 2);
    assert.equal(await s.commit([put('web', { port: 8080 })]), 3);
    assert.deepEqual(
      s.list().map((o) => `${o.kind}/${o.namespace}/${o.name}@${o.revision}`),
      ['HTTPRoute/default/r1@1', 'Service/data/db@2', 'Service/default/api@1', 'Service/default/web@3'],
    );
    assert.deepEqual(s.list('Service').map((o) => o.name), ['db', 'api', 'web']);
    assert.deepEqual(s.get('Service', 'default', 'web'), { kind: 'Service', namespace: 'default', name: 'web', value: { port: 8080 }, revision: 3, ephemeral: false });
    assert.equal(await s.commit([del('api'), del('never-existed')]), 4);
    assert.equal(s.get('Service', 'default', 'api'), undefined);
    assert.equal(await s.commit([]), 4, 'an empty commit is a no-op at the current revision');
    assert.equal(s.revision(), 4);
    await s.close();
  });

  it('keeps committed values apart from the caller and frozen', async () => {
    const s = await opened(tempDir());
    const value = { ports: [{ port: 80 }] };
    await s.commit([put('web', value)]);
    value.ports[0]!.port = 9999;
    const got = s.get('Service', 'default', 'web')!;
    assert.deepEqual(got.value, { ports: [{ port: 80 }] });
    assert.throws(() => {
      (got.value as { ports: { port: number }[] }).ports[0]!.port = 1;
    }, TypeError);
    assert.ok(Object.isFrozen(got));
    s.list().push(got);
    assert.equal(s.list().length, 1, 'list() hands out a fresh array');
    await s.close();
  });

  it('rejects malformed ops and unserialisable values without writing', async () => {
    const s = await opened(tempDir());
    await assert.rejects(s.commit([{ op: 'put', kind: '', namespace: 'default', name: 'x', value: 1 }]), /kind must be a non-empty string/);
    await assert.rejects(s.commit([put('x', { n: 1n })]), TypeError);
    assert.equal(s.revision(), 0);
    assert.equal(await s.commit([put('x', 1)]), 1);
    await s.close();
  });

  it('checks expectations atomically: a conflict writes nothing, a batch sees its earlier commits', async () => {
    const s = await opened(tempDir());
    await s.commit([put('web', 1)]);
    const exp = (revision: number) => [{ kind: 'Service', namespace: 'default', name: 'web', revision }];
    await rejectsWith(s.commit([put('web', 2), put('other', 2)], exp(0)), 'conflict', /Service\/default\/web to be absent, but it is at revision 1/);
    assert.equal(s.revision(), 1);
    assert.equal(s.get('Service', 'default', 'other'), undefined);
    // Two writers race on the same expectation, queued into one batch: exactly one wins.
    const results = await Promise.allSettled([s.commit([put('web', 'a')], exp(1)), s.commit([put('web', 'b')], exp(1))]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected']);
    assert.equal((results[1] as PromiseRejectedResult).reason.code, 'conflict');
    assert.equal(s.get('Service', 'default', 'web')!.value, 'a');
    assert.equal(await s.commit([del('web')], exp(2)), 3);
    assert.equal(await s.commit([put('web', 'c')], exp(0)), 4);
    await s.close();
  });

  it('refuses commits before open and after close', async () => {
    const dir = tempDir();
    await peek(dir, (x) => x.commit([put('x', 0)]));
    const s = new FileStore(dir, { log: silentLogger });
    await rejectsWith(s.commit([put('x', 1)]), 'closed', /not open/);
    const opening = s.open();
    assert.deepEqual([s.list(), s.get('Service', 'default', 'x'), s.revision()], [[], undefined, 0], 'nothing is seen while opening');
    await opening;
    assert.equal(s.revision(), 1);
    await s.commit([put('x', 1)]);
    await s.close();
    await rejectsWith(s.commit([put('y', 1)]), 'closed');
    assert.deepEqual(s.list(), []);
  });
});

describe('FileStore: watch', () => {
  it('delivers each commit once, durable, in revision order, also when commits share an fsync', async () => {
    const dir = tempDir();
    const s = await opened(dir);
    const wal = join(dir, 'store', 'wal.log');
    // Listener exceptions are caught by the store: record what the listener saw and assert after.
    const seen: { revision: number; events: readonly StoreEvent[]; onDisk: boolean; viewRevision: number }[] = [];
    const stop = s.watch((events, revision) => {
      const onDisk = scanRecords(readFileSync(wal), wal).records.some((r) => r.revision === revision);
      seen.push({ revision, events, onDisk, viewRevision: s.revision() });
    });
    s.watch(() => {
      throw new Error('a broken listener must not stop the others');
    });
    await s.commit([put('seed', 0)]);
    const revisions = await Promise.all(Array.from({ length: 20 }, (_, i) => s.commit([put(`svc-${i}`, i), del('seed')])));
    assert.deepEqual(revisions, Array.from({ length: 20 }, (_, i) => i + 2));
    assert.deepEqual(seen.map((x) => x.revision), Array.from({ length: 21 }, (_, i) => i + 1));
    assert.ok(seen.every((x) => x.onDisk), 'listeners run after the record is on disk');
    assert.ok(seen.every((x) => x.viewRevision === x.revision), 'listeners run once the view has the commit');
    assert.deepEqual(seen[1]!.events.map((e) => e.type), ['put', 'delete']);
    assert.deepEqual(seen[2]!.events.map((e) => e.type), ['put'], 'deleting what is already gone is no event');
    const batches = new Set(scanRecords(readFileSync(wal), wal).records.map((r) => r.batchStart));
    assert.ok(batches.size < 21, 'concurrent commits shared writes (group commit)');

    stop();
    await s.commit([put('after-stop', 1)]);
    assert.equal(seen.length, 21);
    await s.close();
  });
});

describe('FileStore: reopen and snapshots', () => {
  it('finds everything again after close and reopen', async () => {
    const dir = tempDir();
    const s = await opened(dir);
    await s.commit([put('web', { a: 1 }), { op: 'put', kind: 'Endpoint', namespace: 'default', name: 'web-1', value: { ip: '10.0.0.1' }, ephemeral: true }]);
    await s.commit([put('api', { b: 2 })]);
    await s.commit([del('web')]);
    const before = s.list();
    await s.close();

    const again = await opened(dir);
    assert.equal(again.revision(), 3);
    assert.deepEqual(again.list(), before);
    assert.equal(again.get('Endpoint', 'default', 'web-1')!.ephemeral, true);
    assert.equal(await again.commit([put('web', 3)]), 4);
    await again.close();
  });

  it('snapshots past the threshold, restarts the WAL, and reopens from snapshot plus WAL', async () => {
    const dir = tempDir();
    const s = await opened(dir, { maxWalRecords: 5 });
    for (let i = 1; i <= 12; i++) await s.commit([put(`svc-${i % 4}`, i)]);
    const snapshot = join(dir, 'store', 'snapshot.bin');
    assert.ok(existsSync(snapshot));
    const wal = join(dir, 'store', 'wal.log');
    assert.equal(scanRecords(readFileSync(wal), wal).records.length, 2, 'commits 11 and 12 after the snapshot at 10');
    const before = s.list();
    await s.close();

    const again = await opened(dir, { maxWalBytes: 200 });
    assert.equal(again.revision(), 12);
    assert.deepEqual(again.list(), before);
    await again.commit([put('big', 'z'.repeat(300))]);
    // The rotation runs after the commit resolved; close() waits for it.
    await again.close();
    assert.equal(statSync(wal).size, 0, 'the byte threshold rotates too');
    assert.equal(await peek(dir, (x) => x.get('Service', 'default', 'big')!.revision), 13);
  });

  it('finishes a rotation cut short between the snapshot and the WAL restart', async () => {
    // Same commits in two directories: one rotated (snapshot at 5, empty WAL), one not (WAL 1..5).
    const rotated = tempDir();
    const plain = tempDir();
    for (const [dir, maxWalRecords] of [[rotated, 5], [plain, 100]] as const) {
      const s = await opened(dir, { maxWalRecords });
      for (let i = 1; i <= 5; i++) await s.commit([put(`svc-${i}`, i)]);
      await s.close();
    }
    // The crash state: the new snapshot is in place, the old WAL not yet truncated; plus a torn temp snapshot.
    copyFileSync(join(rotated, 'store', 'snapshot.bin'), join(plain, 'store', 'snapshot.bin'));
    writeFileSync(join(plain, 'store', 'snapshot.bin.tmp'), 'half a snap');
    const s = await opened(plain);
    assert.equal(s.revision(), 5);
    assert.equal(s.list().length, 5);
    assert.equal(statSync(join(plain, 'store', 'wal.log')).size, 0);
    assert.ok(!existsSync(join(plain, 'store', 'snapshot.bin.tmp')));
    assert.equal(await s.commit([put('svc-6', 6)]), 6);
    await s.close();
    assert.equal(await peek(plain, (x) => x.revision()), 6);
  });

  it('refuses a damaged snapshot', async () => {
    const dir = tempDir();
    const s = await opened(dir, { maxWalRecords: 2 });
    for (let i = 0; i < 2; i++) await s.commit([put(`svc-${i}`, i)]);
    await s.close();
    const snapshot = join(dir, 'store', 'snapshot.bin');
    const buf = readFileSync(snapshot);
    buf[buf.length - 3]! ^= 0xff;
    writeFileSync(snapshot, buf);
    await rejectsWith(opened(dir), 'corrupt', /snapshot\.bin: payload checksum mismatch at byte 0/);
  });
});

describe('FileStore: torn and damaged WAL records', () => {
  /** A store dir with `n` commits (one record each); returns the WAL bytes and each record's start offset. */
  async function walWith(n: number): Promise<{ dir: string; wal: string; bytes: Buffer; offsets: number[] }> {
    const dir = tempDir();
    const s = await opened(dir);
    for (let i = 1; i <= n; i++) await s.commit([put(`svc-${i}`, { i, pad: 'p'.repeat(i * 7) })]);
    await s.close();
    const wal = join(dir, 'store', 'wal.log');
    const bytes = readFileSync(wal);
    return { dir, wal, bytes, offsets: scanRecords(bytes, wal).records.map((r) => r.offset) };
  }

  it('drops a torn last record at every cut point, warns, and works on', async () => {
    const { dir, wal, bytes, offsets } = await walWith(3);
    const last = offsets[2]!;
    for (let cut = last + 1; cut < bytes.length; cut++) {
      writeFileSync(wal, bytes.subarray(0, cut));
      const { log, lines } = capturingLog();
      const s = await opened(dir, { log });
      assert.equal(s.revision(), 2, `cut at ${cut}`);
      assert.equal(s.get('Service', 'default', 'svc-3'), undefined);
      assert.equal(s.get('Service', 'default', 'svc-2')!.revision, 2);
      assert.equal(statSync(wal).size, last, 'the file is cut back to the last intact record');
      const warning = lines.find((l) => l.level === 'warn' && String(l.msg).includes('torn'));
      assert.ok(warning, `a warning for the cut at ${cut}`);
      assert.equal(warning.offset, last);
      assert.equal(await s.commit([put('svc-3', 'again')]), 3);
      await s.close();
    }
    assert.equal(await peek(dir, (x) => x.get('Service', 'default', 'svc-3')!.value), 'again');
  });

  it('drops a zero-filled tail (a crash after the file grew but before its data landed)', async () => {
    const { dir, wal, bytes } = await walWith(2);
    writeFileSync(wal, Buffer.concat([bytes, Buffer.alloc(4096)]));
    const s = await opened(dir);
    assert.equal(s.revision(), 2);
    assert.equal(statSync(wal).size, bytes.length);
    await s.close();
  });

  it('refuses a flipped byte anywhere in an earlier record, naming the file and offset', async () => {
    const { dir, wal, bytes, offsets } = await walWith(4);
    const [start, end] = [offsets[1]!, offsets[2]!];
    for (let at = start; at < end; at++) {
      const damaged = Buffer.from(bytes);
      damaged[at]! ^= 0x5a;
      writeFileSync(wal, damaged);
      await rejectsWith(opened(dir), 'corrupt', new RegExp(`wal\\.log: damaged record at byte ${start} \\(`));
      assert.equal(statSync(wal).size, bytes.length, 'a refused WAL is left as it was');
    }
    writeFileSync(wal, bytes);
    assert.equal(await peek(dir, (x) => x.revision()), 4, 'and the lock was released after each refusal');
  });

  it('tells a torn group-commit write (drop) from damage followed by a later write (refuse)', async () => {
    const { dir, wal, bytes } = await walWith(1);
    const record = (i: number) => ({ revision: i, payload: Buffer.from(JSON.stringify([{ op: 'put', kind: 'Service', namespace: 'default', name: `b-${i}`, value: i }])) });
    // One write of three commits whose middle pages never reached the disk: nothing of it was acknowledged.
    const batch = encodeBatch([record(2), record(3), record(4)]);
    const middle = 32 + record(2).payload.length + 40;
    batch.fill(0, middle, middle + 8);
    writeFileSync(wal, Buffer.concat([bytes, batch]));
    const s = await opened(dir);
    assert.equal(s.revision(), 2, 'the intact start of the torn write may stay');
    await s.close();

    // The same damage with another write after it cannot come from a crash.
    writeFileSync(wal, Buffer.concat([bytes, batch, encodeBatch([record(5)])]));
    await rejectsWith(opened(dir), 'corrupt', /damaged record at byte \d+/);
  });

  it('refuses a gap in revisions', async () => {
    const { dir, wal, bytes } = await walWith(2);
    const payload = Buffer.from(JSON.stringify([{ op: 'delete', kind: 'Service', namespace: 'default', name: 'svc-1' }]));
    writeFileSync(wal, Buffer.concat([bytes, encodeBatch([{ revision: 4, payload }])]));
    await rejectsWith(opened(dir), 'corrupt', /revision 4 follows 2/);
  });
});

describe('FileStore: one owner per directory', () => {
  it('refuses a second owner while it lives and takes over once it is killed', async (t) => {
    const dir = tempDir();
    const child = spawn(process.execPath, [CHILD, 'hold', dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => stopChild(child));
    await waitForLine(child, 'ready');
    await rejectsWith(opened(dir), 'unavailable', new RegExp(`in use by process ${child.pid}.*stop that process`));
    await stopChild(child);
    const { log, lines } = capturingLog();
    const s = await opened(dir, { log });
    assert.ok(lines.some((l) => l.level === 'warn' && l.pid === child.pid));
    await rejectsWith(opened(dir), 'unavailable', new RegExp(`in use by process ${process.pid}`));
    await s.close();
    assert.ok(!existsSync(join(dir, 'store', 'LOCK')), 'close removes the lock');
  });

  it('takes over a lock with our own PID left by an earlier life (a restarted container)', async () => {
    const dir = tempDir();
    await (await opened(dir)).close();
    writeFileSync(join(dir, 'store', 'LOCK'), `${process.pid} 1\n`);
    const s = await opened(dir);
    assert.equal(readFileSync(join(dir, 'store', 'LOCK'), 'utf8').split(' ')[0], String(process.pid));
    await s.close();
  });
});

describe('FileStore: kill -9', () => {
  it('keeps every acknowledged commit through SIGKILL at random moments, snapshots included', async (t) => {
    const dir = tempDir();
    const ROUNDS = 8;
    // Key -> last acknowledged state: put at a revision, deleted, or put with a delete in flight (either may be found).
    const acked = new Map<string, number | 'deleted' | { maybeDeleted: number }>();
    let maxAcked = 0;
    let killedMidSnapshot = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const child = spawn(process.execPath, [CHILD, 'loop', dir, String(round), '16'], { stdio: ['ignore', 'pipe', 'inherit'] });
      t.after(() => stopChild(child));
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      await waitForLine(child, 'ready');
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 300));
      await stopChild(child);
      // Only complete lines count: the child prints a line after its commit resolved.
      const lines = out.slice(0, out.lastIndexOf('\n') + 1).split('\n').filter((l) => /^(put|del|deleting) /.test(l));
      for (const line of lines) {
        const [what, a, b] = line.split(' ') as [string, string, string];
        if (what === 'deleting') {
          const state = acked.get(a);
          assert.equal(typeof state, 'number', `the child deletes only acknowledged keys (${line})`);
          acked.set(a, { maybeDeleted: state as number });
          continue;
        }
        acked.set(b, what === 'put' ? Number(a) : 'deleted');
        maxAcked = Math.max(maxAcked, Number(a));
      }
      if (existsSync(join(dir, 'store', 'snapshot.bin.tmp'))) killedMidSnapshot++;
      const s = await opened(dir, { maxWalRecords: 16 });
      assert.ok(s.revision() >= maxAcked, `round ${round}: revision ${s.revision()} < acknowledged ${maxAcked}`);
      for (const [key, state] of acked) {
        const o = s.get('Endpoint', 'crash', key);
        if (state === 'deleted') assert.equal(o, undefined, `round ${round}: ${key} was deleted`);
        else if (typeof state === 'number' || o !== undefined) {
          const revision = typeof state === 'number' ? state : state.maybeDeleted;
          assert.ok(o, `round ${round}: acknowledged ${key} at ${revision} is missing`);
          assert.equal(o.revision, revision);
          assert.equal((o.value as { key: string }).key, key);
        }
      }
      await s.close();
    }
    t.diagnostic(`${maxAcked} commits acknowledged, ${killedMidSnapshot} of ${ROUNDS} kills left a half-written snapshot`);
    assert.ok(maxAcked > 50, `enough commits were acknowledged to mean something (${maxAcked})`);
    assert.ok(existsSync(join(dir, 'store', 'snapshot.bin')), 'rotations happened during the rounds');
  });
});

describe('FileStore: full disk', () => {
  it('refuses commits with disk-full, leaves no partial record, serves reads, and resumes once space frees', async (t) => {
    const dir = tempDir();
    if (!(await mountTmpfs(t, dir))) return;
    const { log, lines } = capturingLog();
    const s = await opened(dir, { maxWalRecords: 3, log });
    t.after(async () => {
      await s.close();
      await run('umount', [dir]);
    });
    // A 40 KB object makes every snapshot too big for the space freed later.
    await s.commit([put('big', 'b'.repeat(40_000))]);
    await s.commit([put('small', 1)]);
    const wal = join(dir, 'store', 'wal.log');
    const walSize = statSync(wal).size;

    fill(join(dir, 'filler-small'), 8192);
    fill(join(dir, 'filler'), Infinity);
    const large = put('large', 'l'.repeat(20_000));
    await rejectsWith(s.commit([large]), 'disk-full', /ENOSPC.*nothing was written.*Free space/);
    const batch = await Promise.allSettled([s.commit([large]), s.commit([put('large2', 'm'.repeat(20_000))])]);
    assert.deepEqual(batch.map((r) => r.status === 'rejected' && (r.reason as StoreError).code), ['disk-full', 'disk-full']);
    assert.equal(statSync(wal).size, walSize, 'no partial record is left behind');
    assert.equal(s.revision(), 2);
    assert.equal(s.get('Service', 'default', 'small')!.value, 1);
    assert.equal(s.list().length, 2);

    // Room for a small commit but not for a snapshot: the commit lands, the snapshot waits.
    rmSync(join(dir, 'filler-small'));
    assert.equal(await s.commit([put('small', 2)]), 3, 'the third WAL record: a snapshot is due');
    assert.equal(await s.commit([put('small', 3)]), 4, 'queued behind the snapshot attempt');
    assert.ok(lines.some((l) => l.level === 'warn' && String(l.msg).startsWith('snapshot failed')));
    assert.ok(!existsSync(join(dir, 'store', 'snapshot.bin')) && !existsSync(join(dir, 'store', 'snapshot.bin.tmp')));

    rmSync(join(dir, 'filler'));
    assert.equal(await s.commit([large]), 5);
    assert.equal(await s.commit([put('small', 4)]), 6, 'the WAL grew by another threshold: the snapshot is retried');
    await s.close();
    assert.ok(existsSync(join(dir, 'store', 'snapshot.bin')));
    const again = await opened(dir);
    assert.equal(again.revision(), 6);
    assert.equal((again.get('Service', 'default', 'large')!.value as string).length, 20_000);
    await again.close();
  });
});

/** Mounts a 256 KiB tmpfs on `dir` (the caller unmounts it); skips when not permitted, fails so under CI. */
async function mountTmpfs(t: { skip(msg: string): void }, dir: string): Promise<boolean> {
  const result = await run('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', dir]);
  if (result !== 0) {
    const msg = `mounting a tmpfs needs root (mount exited ${result}); run as root to test the full-disk path`;
    if (process.env.CI === 'true') throw new Error(`CI=true: ${msg}`);
    t.skip(msg);
    return false;
  }
  return true;
}

function run(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: 'ignore' });
    p.on('error', () => resolve(-1));
    p.on('exit', (code) => resolve(code ?? -1));
  });
}

/** Writes `bytes` (or until ENOSPC, for Infinity) into a new file. */
function fill(path: string, bytes: number): void {
  const chunk = Buffer.alloc(4096, 7);
  let written = 0;
  // A 256 KiB file system takes at most 64 chunks; the bound is far above that.
  for (let i = 0; i < 10_000 && written < bytes; i++) {
    try {
      writeFileSync(path, chunk, { flag: 'a' });
      written += chunk.length;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC' && bytes === Infinity) return;
      throw err;
    }
  }
}

function waitForLine(child: ChildProcess, line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`child did not print "${line}" within 20 s`)), 20_000);
    const onData = (d: Buffer) => {
      buf += d.toString();
      if (buf.split('\n').includes(line)) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`child exited (${code}) before printing "${line}"`));
    });
  });
}

/** SIGKILLs a child we started (by its PID) and waits for it to be gone. */
function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}
