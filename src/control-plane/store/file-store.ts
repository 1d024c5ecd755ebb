// The embedded store: each commit is one checksummed record in a write-ahead log, fsynced before it resolves; past a
// size the whole state goes to a snapshot and the log starts over. Recovery on open, one owning process per directory.
import { constants, promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createLogger, type Logger } from '../../core/log.js';
import { isDiskFull, replaceFileDurably, syncDir, writeError, writeFully } from './durable-io.js';
import { normalizeOps, ObjectView, type PlannedCommit, type Staged } from './object-view.js';
import { StoreLock } from './store-lock.js';
import { StoreError, type Store, type StoreExpectation, type StoredObject, type StoreListener, type StoreOp } from './store.js';
import { encodeBatch, readRecord, scanRecords } from './wal-record.js';

export interface FileStoreOptions {
  /** Snapshot and start a new WAL once the WAL holds this many bytes (default 16 MiB). */
  readonly maxWalBytes?: number;
  /** ... or this many commits (default 100 000). */
  readonly maxWalRecords?: number;
  /** Most queued commits that share one write and one fsync (default 64; 1 = no group commit). */
  readonly maxBatch?: number;
  readonly log?: Logger;
}

interface Pending {
  readonly payload: Buffer;
  readonly expect: readonly StoreExpectation[];
  readonly resolve: (revision: number) => void;
  readonly reject: (err: unknown) => void;
}

interface Accepted extends PlannedCommit {
  readonly pending: Pending;
  readonly revision: number;
}

type State = 'new' | 'opening' | 'open' | 'closing' | 'closed';

export class FileStore implements Store {
  readonly description: string;
  private readonly dir: string;
  private readonly walPath: string;
  private readonly snapshotPath: string;
  private readonly maxWalBytes: number;
  private readonly maxWalRecords: number;
  private readonly maxBatch: number;
  private readonly log: Logger;
  private readonly view = new ObjectView();
  private readonly listeners = new Set<StoreListener>();
  private state: State = 'new';
  private lock: StoreLock | undefined;
  private wal: FileHandle | undefined;
  private walBytes = 0;
  private walRecords = 0;
  // Raised after a failed snapshot so that a full disk is not hit by a snapshot attempt on every commit.
  private rotateAtBytes: number;
  private rotateAtRecords: number;
  /** A failed write may have left bytes past walBytes that a truncate has not yet removed: no append until it does. */
  private needsTruncate = false;
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;

  /** `stateDir` is the control plane's state directory (e.g. `.mycel`); the store keeps its files in `stateDir/store/`. */
  constructor(stateDir: string, options: FileStoreOptions = {}) {
    this.dir = join(resolve(stateDir), 'store');
    this.description = `file:${resolve(stateDir)}`;
    this.walPath = join(this.dir, 'wal.log');
    this.snapshotPath = join(this.dir, 'snapshot.bin');
    this.maxWalBytes = options.maxWalBytes ?? 16 * 1024 * 1024;
    this.maxWalRecords = options.maxWalRecords ?? 100_000;
    this.maxBatch = Math.max(1, options.maxBatch ?? 64);
    this.log = (options.log ?? createLogger()).child({ component: 'file-store', dir: this.dir });
    this.rotateAtBytes = this.maxWalBytes;
    this.rotateAtRecords = this.maxWalRecords;
  }

  async open(): Promise<void> {
    if (this.state !== 'new' && this.state !== 'closed') throw new Error(`${this.description}: open() called while ${this.state}`);
    this.state = 'opening';
    try {
      await this.createDir();
      this.lock = await StoreLock.acquire(join(this.dir, 'LOCK'));
      if (this.lock.tookOverFrom !== undefined) this.log.warn('took over the lock of a process that is gone', { pid: this.lock.tookOverFrom });
      await this.recover();
      this.state = 'open';
    } catch (err) {
      this.view.clear();
      await this.wal?.close().catch(() => {});
      this.wal = undefined;
      await this.lock?.release().catch(() => {});
      this.lock = undefined;
      this.state = 'closed';
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.state !== 'open') return;
    this.state = 'closing';
    // Commits already queued still complete; new ones are refused from here on.
    while (this.flushing) await this.flushing;
    await this.wal?.close();
    this.wal = undefined;
    await this.lock?.release();
    this.lock = undefined;
    this.view.clear();
    this.listeners.clear();
    this.state = 'closed';
  }

  // Reads answer from memory, and only once open() resolved (recovery fills the view before that).
  revision(): number {
    return this.readable() ? this.view.revision() : 0;
  }

  list(kind?: string): StoredObject[] {
    return this.readable() ? this.view.list(kind) : [];
  }

  get(kind: string, namespace: string, name: string): StoredObject | undefined {
    return this.readable() ? this.view.get(kind, namespace, name) : undefined;
  }

  async commit(ops: readonly StoreOp[], expect: readonly StoreExpectation[] = []): Promise<number> {
    if (this.state !== 'open') throw new StoreError('closed', `${this.description} is ${this.state === 'new' ? 'not open' : 'closed'}`);
    if (ops.length === 0) return this.view.revision();
    // Serialized now: the caller may change its objects once commit() returns, and the WAL and memory both get
    // this copy (memory via JSON.parse, exactly as a replay would rebuild it).
    const payload = Buffer.from(JSON.stringify(normalizeOps(ops)));
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ payload, expect: expect.slice(), resolve, reject });
      this.startFlushing();
    });
  }

  watch(listener: StoreListener): () => void {
    // A wrapper per call, so the same function watched twice is called twice and each stop removes one.
    const entry: StoreListener = (events, revision) => listener(events, revision);
    this.listeners.add(entry);
    return () => {
      this.listeners.delete(entry);
    };
  }

  private readable(): boolean {
    return this.state === 'open' || this.state === 'closing';
  }

  private async createDir(): Promise<void> {
    const parent = resolve(this.dir, '..');
    const created = await fsp.mkdir(this.dir, { recursive: true });
    if (created !== undefined) {
      await syncDir(parent);
      await syncDir(resolve(parent, '..')).catch(() => {});
    }
  }

  /** Loads the snapshot, replays the WAL records after it, and cuts a torn last record off. */
  private async recover(): Promise<void> {
    this.view.clear();
    await fsp.rm(`${this.snapshotPath}.tmp`, { force: true });
    await this.loadSnapshot();

    let created = false;
    try {
      this.wal = await fsp.open(this.walPath, constants.O_RDWR);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.wal = await fsp.open(this.walPath, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600);
      created = true;
    }
    if (created) await syncDir(this.dir);
    const buf = await this.wal.readFile();
    const scan = scanRecords(buf, this.walPath);
    if (scan.torn) {
      this.log.warn('dropped a torn last WAL record (a write cut short by a crash; it was never acknowledged)', {
        file: this.walPath,
        offset: scan.torn.offset,
        droppedBytes: buf.length - scan.validLength,
        reason: scan.torn.reason,
      });
      await this.wal.truncate(scan.validLength);
      await this.wal.datasync();
    }
    const snapshotRevision = this.view.revision();
    let previous: number | undefined;
    for (const r of scan.records) {
      if (previous !== undefined && r.revision !== previous + 1) throw this.corrupt(r.offset, `revision ${r.revision} follows ${previous}`);
      previous = r.revision;
      // Records at or below the snapshot's revision are already in it (a crash before the WAL was restarted).
      if (r.revision <= this.view.revision()) continue;
      if (r.revision !== this.view.revision() + 1) throw this.corrupt(r.offset, `revision ${r.revision} but the snapshot ends at ${this.view.revision()}`);
      let planned: PlannedCommit;
      try {
        planned = this.view.plan(normalizeOps(JSON.parse(r.payload.toString()) as unknown[]), r.revision, new Map());
      } catch (err) {
        throw this.corrupt(r.offset, `unreadable ops (${(err as Error).message})`);
      }
      this.view.apply(planned.changes, r.revision);
    }
    this.walBytes = scan.validLength;
    this.walRecords = scan.records.length;
    if (previous !== undefined && previous <= snapshotRevision) {
      // A rotation stopped between the snapshot and the WAL restart: every record is in the snapshot, so finish it.
      await this.wal.truncate(0);
      await this.wal.datasync();
      this.walBytes = 0;
      this.walRecords = 0;
    }
  }

  private async loadSnapshot(): Promise<void> {
    let buf: Buffer;
    try {
      buf = await fsp.readFile(this.snapshotPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    // Written whole and renamed into place, a snapshot is never torn: any damage is corruption.
    const r = readRecord(buf, 0);
    const fail = (why: string) =>
      new StoreError('corrupt', `${this.snapshotPath}: ${why} at byte 0; restore the store directory from a backup`);
    if (typeof r === 'string') throw fail(r);
    if (r.end !== buf.length) throw fail(`${buf.length - r.end} unexpected bytes after the snapshot record`);
    let objects: StoredObject[];
    try {
      objects = JSON.parse(r.payload.toString()) as StoredObject[];
      if (!Array.isArray(objects)) throw new TypeError('not a list of objects');
    } catch (err) {
      throw fail(`unreadable objects (${(err as Error).message})`);
    }
    this.view.load(objects, r.revision);
  }

  private corrupt(offset: number, why: string): StoreError {
    return new StoreError(
      'corrupt',
      `${this.walPath}: bad record at byte ${offset}: ${why}; restore the store directory from a backup`,
    );
  }

  private startFlushing(): void {
    if (this.flushing) return;
    this.flushing = this.flushQueue().finally(() => {
      this.flushing = undefined;
      // A commit queued after the loop's last look must not wait for the next one.
      if (this.queue.length > 0) this.startFlushing();
    });
  }

  /** Writes queued commits in batches (one write and one fsync each), then rotates the WAL when it is due. */
  private async flushQueue(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      try {
        await this.flushBatch(batch);
      } catch (err) {
        for (const p of batch) p.reject(err);
      }
      if (this.walBytes >= this.rotateAtBytes || this.walRecords >= this.rotateAtRecords) await this.rotate();
    }
  }

  private async flushBatch(batch: readonly Pending[]): Promise<void> {
    const wal = this.wal;
    if (wal === undefined) throw new StoreError('closed', `${this.description} is closed`);
    if (this.needsTruncate) await this.truncateBack(wal, true);
    // Expectations are checked in queue order against the view plus the batch's earlier commits.
    const staged: Staged = new Map();
    const accepted: Accepted[] = [];
    let revision = this.view.revision();
    for (const pending of batch) {
      const unmet = this.view.unmet(pending.expect, staged);
      if (unmet !== undefined) {
        pending.reject(new StoreError('conflict', `${unmet}; nothing was written`));
        continue;
      }
      revision++;
      const ops = normalizeOps(JSON.parse(pending.payload.toString()) as unknown[]);
      accepted.push({ pending, revision, ...this.view.plan(ops, revision, staged) });
    }
    if (accepted.length === 0) return;

    const buf = encodeBatch(accepted.map((a) => ({ revision: a.revision, payload: a.pending.payload })));
    try {
      await writeFully(wal, buf, this.walBytes);
      await wal.datasync();
    } catch (err) {
      await this.truncateBack(wal, false);
      const e = writeError(err, this.walPath);
      if (isDiskFull(err)) this.log.warn('commit refused: disk full', { file: this.walPath, code: (err as NodeJS.ErrnoException).code });
      else this.log.error('commit failed', { file: this.walPath, err });
      for (const a of accepted) a.pending.reject(e);
      return;
    }
    this.walBytes += buf.length;
    this.walRecords += accepted.length;
    for (const a of accepted) {
      this.view.apply(a.changes, a.revision);
      this.emit(a);
      a.pending.resolve(a.revision);
    }
  }

  /** Cuts the WAL back to its last good length after a failed write; until that works, no commit is appended. */
  private async truncateBack(wal: FileHandle, rethrow: boolean): Promise<void> {
    try {
      await wal.truncate(this.walBytes);
      this.needsTruncate = false;
    } catch (err) {
      this.needsTruncate = true;
      this.log.error('cannot cut the WAL back after a failed write; commits wait until this succeeds', { file: this.walPath, err });
      if (rethrow) throw writeError(err, this.walPath);
    }
  }

  private emit(commit: Accepted): void {
    if (commit.events.length === 0) return;
    for (const listener of [...this.listeners]) {
      if (!this.listeners.has(listener)) continue;
      try {
        listener(commit.events, commit.revision);
      } catch (err) {
        this.log.error('a store listener threw', { revision: commit.revision, err });
      }
    }
  }

  /**
   * Snapshot then restart the WAL. Each step is safe to crash after: the snapshot replaces the old one atomically
   * (temp file, fsync, rename, directory fsync), and until the WAL is truncated its records are at or below the
   * snapshot's revision, which replay skips. Commits wait meanwhile (they queue and go out as one batch after).
   */
  private async rotate(): Promise<void> {
    const wal = this.wal;
    if (wal === undefined || this.needsTruncate) return;
    const revision = this.view.revision();
    const snapshot = encodeBatch([{ revision, payload: Buffer.from(JSON.stringify(this.view.list())) }]);
    try {
      await replaceFileDurably(this.snapshotPath, snapshot);
      await wal.truncate(0);
      await wal.datasync();
    } catch (err) {
      // The WAL still holds every commit; try again once it has grown by another threshold.
      this.rotateAtBytes = this.walBytes + this.maxWalBytes;
      this.rotateAtRecords = this.walRecords + this.maxWalRecords;
      this.log.warn('snapshot failed; the WAL keeps every commit and the snapshot is retried later', { file: this.snapshotPath, err });
      return;
    }
    this.walBytes = 0;
    this.walRecords = 0;
    this.rotateAtBytes = this.maxWalBytes;
    this.rotateAtRecords = this.maxWalRecords;
    this.log.debug('snapshot written, WAL restarted', { revision, bytes: snapshot.length });
  }
}
