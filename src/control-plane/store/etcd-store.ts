// The etcd store: control-plane replicas share their state in etcd. Each replica's in-memory view follows one watch on
// the key prefix, so a commit made through any replica reaches every replica's list/get and listeners, in order, once.

import type { IEvent, IKeyValue, IRequestOp, ITxnResponse } from 'etcd3';
import { createLogger, type Logger } from '../../core/log.js';
import { EtcdConnection, isLeaseNotFound, reasonOf, retryDelay, sleep, wasNotApplied } from './etcd-connection.js';
import { EtcdKeys, type ObjectId } from './etcd-keys.js';
import { EtcdLease } from './etcd-lease.js';
import { RangeWatch } from './etcd-watch.js';
import { byKindNamespaceName, freezeObject } from './object-view.js';
import { objectKey, StoreError, type Store, type StoreCloseOptions, type StoreEvent, type StoreExpectation, type StoreListener, type StoredObject, type StoreOp } from './store.js';

export interface EtcdStoreOptions {
  /** Client URLs of the etcd members, e.g. `http://10.0.0.5:2379`. */
  endpoints: readonly string[];
  /** Every key of this store starts with it; several meshes can share one etcd under different prefixes. */
  prefix?: string;
  /** TTL of this replica's lease: how long its ephemeral objects outlive it (dead, or closed without `revoke`). */
  leaseTtlSeconds?: number;
  /** How long a commit (or open) may wait for etcd before it fails with `unavailable`. */
  commitTimeoutMs?: number;
  log?: Logger;
}

export const DEFAULT_ETCD_PREFIX = '/mycel/v1/';
const DEFAULT_LEASE_TTL_SECONDS = 10;
const DEFAULT_COMMIT_TIMEOUT_MS = 5000;
/** Keys per range request while loading, so that a large state never exceeds gRPC's 4 MiB message limit. */
const LOAD_PAGE_SIZE = 500;
/** A commit attempt starts only with this much time left before the deadline. */
const MIN_ATTEMPT_MS = 100;

type State = 'new' | 'opening' | 'open' | 'closing' | 'closed';

/** One op of a commit, checked and encoded. */
interface PreparedOp extends ObjectId {
  readonly objectKey: string;
  readonly key: Buffer;
  /** The JSON bytes of a put; undefined for a delete. */
  readonly encoded: Buffer | undefined;
  readonly ephemeral: boolean;
}

/** An ephemeral object this replica wrote, kept to attach it again to a new lease after the old one lapsed. */
interface OwnedObject extends ObjectId {
  readonly encoded: Buffer;
  revision: number;
}

interface Waiter {
  readonly revision: number;
  readonly resolve: () => void;
  readonly timer: NodeJS.Timeout;
}

export class EtcdStore implements Store {
  readonly description: string;
  private readonly endpoints: readonly string[];
  private readonly keys: EtcdKeys;
  private readonly leaseTtlSeconds: number;
  private readonly commitTimeoutMs: number;
  private readonly log: Logger;

  private state: State = 'new';
  private conn: EtcdConnection | undefined;
  private watcher: RangeWatch | undefined;
  private lease: EtcdLease | undefined;
  private closing: Promise<void> | undefined;
  /** Aborted by close(), so that retry loops stop waiting at once. */
  private stopping = new AbortController();

  private readonly objects = new Map<string, StoredObject>();
  private sorted: StoredObject[] | undefined;
  private rev = 0;
  private readonly listeners = new Set<StoreListener>();
  /** Commits that etcd acknowledged and the view has not caught up with yet. */
  private waiters: Waiter[] = [];
  private readonly owned = new Map<string, OwnedObject>();

  constructor(options: EtcdStoreOptions) {
    if (options.endpoints.length === 0) throw new TypeError('the etcd store needs at least one endpoint');
    this.endpoints = [...options.endpoints];
    this.description = `etcd:${this.endpoints.join(',')}`;
    this.keys = new EtcdKeys(options.prefix ?? DEFAULT_ETCD_PREFIX);
    this.leaseTtlSeconds = options.leaseTtlSeconds ?? DEFAULT_LEASE_TTL_SECONDS;
    if (!Number.isInteger(this.leaseTtlSeconds) || this.leaseTtlSeconds < 1) throw new TypeError('leaseTtlSeconds must be a whole number of seconds, at least 1');
    this.commitTimeoutMs = options.commitTimeoutMs ?? DEFAULT_COMMIT_TIMEOUT_MS;
    this.log = options.log ?? createLogger({ fields: { component: 'etcd-store' } });
  }

  async open(): Promise<void> {
    if (this.state !== 'new' && this.state !== 'closed') throw new Error(`${this.description}: open() called while ${this.state}`);
    this.state = 'opening';
    this.stopping = new AbortController();
    const conn = new EtcdConnection(this.endpoints);
    this.conn = conn;
    try {
      const loaded = await this.loadUntil(Date.now() + this.commitTimeoutMs);
      this.replaceAll(loaded.objects, loaded.revision, false);
    } catch (err) {
      conn.close();
      this.conn = undefined;
      this.state = 'closed';
      throw this.unavailable('loading the state', reasonOf(err), err, false, 'then start the control plane again');
    }
    if (this.state !== 'opening') {
      // close() ran while the state was loading.
      conn.close();
      this.conn = undefined;
      throw new StoreError('closed', `${this.description} was closed while opening`);
    }
    this.lease = new EtcdLease(conn, this.leaseTtlSeconds, this.commitTimeoutMs, this.log, (id) => void this.reattach(id));
    this.watcher = new RangeWatch(conn, this.keys, { events: (evs) => this.onEvents(evs), compacted: () => void this.recover() }, this.log);
    this.watcher.start(this.rev + 1);
    this.state = 'open';
    this.log.info('etcd store open', { endpoints: this.endpoints, prefix: this.keys.prefix, revision: this.rev, objects: this.objects.size });
  }

  /**
   * Stops watching and keeping the lease alive. The lease is left to lapse after its TTL (so that another replica can
   * take this one's ephemeral objects over first) unless `revoke` asks for them to go now.
   */
  close(options: StoreCloseOptions = {}): Promise<void> {
    if (this.state === 'open') {
      this.closing = this.shutDown(options.revoke === true);
    } else if (this.state !== 'closing') {
      // While opening, this stops the load's retries; open() then closes the connection.
      this.state = 'closed';
      this.stopping.abort();
    }
    return this.closing ?? Promise.resolve();
  }

  private async shutDown(revoke: boolean): Promise<void> {
    this.state = 'closing';
    this.stopping.abort();
    this.watcher?.stop();
    await this.lease?.close(Date.now() + Math.min(this.commitTimeoutMs, 2000), revoke);
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.resolve();
    }
    this.waiters = [];
    this.conn?.close();
    this.conn = undefined;
    this.watcher = undefined;
    this.lease = undefined;
    this.listeners.clear();
    this.state = 'closed';
    this.closing = undefined;
  }

  revision(): number {
    return this.rev;
  }

  list(kind?: string): StoredObject[] {
    this.sorted ??= [...this.objects.values()].sort(byKindNamespaceName);
    return kind === undefined ? this.sorted.slice() : this.sorted.filter((o) => o.kind === kind);
  }

  get(kind: string, namespace: string, name: string): StoredObject | undefined {
    return this.objects.get(objectKey(kind, namespace, name));
  }

  watch(listener: StoreListener): () => void {
    // A wrapper per call, so that the same function watching twice is two listeners, each removed by its own stop.
    const entry: StoreListener = (events, revision) => listener(events, revision);
    this.listeners.add(entry);
    return () => {
      this.listeners.delete(entry);
    };
  }

  async commit(ops: readonly StoreOp[], expect: readonly StoreExpectation[] = []): Promise<number> {
    if (this.state !== 'open') throw new StoreError('closed', `${this.description} is ${this.state === 'new' ? 'not open' : 'closed'}`);
    if (ops.length === 0) return this.rev;
    const prepared = this.prepare(ops);
    const checked = expect.map((e, i) => this.expectation(e, i));
    const deadline = Date.now() + this.commitTimeoutMs;
    const { res, leaseId } = await this.send(prepared, checked, deadline);
    if (!res.succeeded) throw new StoreError('conflict', `${this.unmet(checked, res)}; nothing was written`);
    const revision = Number(res.header.revision);
    this.noteOwned(prepared, revision, leaseId);
    // Deleting only absent keys changes nothing, and etcd then makes no new revision to wait for.
    const changed = prepared.some((p, i) => p.encoded !== undefined || Number(res.responses[i]?.response_delete_range?.deleted ?? 0) > 0);
    if (!changed) return this.rev;
    await this.seen(revision);
    return revision;
  }

  // ---- commit ----

  private prepare(ops: readonly StoreOp[]): PreparedOp[] {
    // etcd refuses two ops on one key in a transaction; the last op on a key decides its end state, so it alone is sent.
    const byKey = new Map<string, PreparedOp>();
    ops.forEach((op, i) => {
      const id = checkId(op, `op ${i}`);
      const key = objectKey(id.kind, id.namespace, id.name);
      let encoded: Buffer | undefined;
      if (op.op === 'put') {
        const json = op.value === undefined ? undefined : (JSON.stringify(op.value) as string | undefined);
        if (json === undefined) throw new TypeError(`op ${i}: put needs a JSON value`);
        encoded = Buffer.from(json, 'utf8');
      } else if (op.op !== 'delete') {
        throw new TypeError(`op ${i}: op must be "put" or "delete"`);
      }
      byKey.delete(key);
      byKey.set(key, { ...id, objectKey: key, key: this.keys.key(id.kind, id.namespace, id.name), encoded, ephemeral: op.op === 'put' && op.ephemeral === true });
    });
    return [...byKey.values()];
  }

  private expectation(e: StoreExpectation, i: number): StoreExpectation & { key: Buffer } {
    const id = checkId(e, `expectation ${i}`);
    if (!Number.isSafeInteger(e.revision) || e.revision < 0) throw new TypeError(`expectation ${i}: revision must be a whole number >= 0`);
    return { ...id, revision: e.revision, key: this.keys.key(id.kind, id.namespace, id.name) };
  }

  /** Sends the transaction, again while etcd certainly did not apply it and time is left. */
  private async send(ops: readonly PreparedOp[], expect: ReadonlyArray<StoreExpectation & { key: Buffer }>, deadline: number): Promise<{ res: ITxnResponse; leaseId: string | undefined }> {
    const compare = expect.map((e) => ({ key: e.key, target: 'Mod' as const, result: 'Equal' as const, mod_revision: e.revision }));
    // On a failed compare etcd answers these reads from the same revision, to say which expectation failed and why.
    const failure: IRequestOp[] = expect.map((e) => ({ request_range: { key: e.key, keys_only: true } }));
    const needsLease = ops.some((op) => op.ephemeral);
    const reasons = new Set<string>();
    for (let attempt = 0; ; attempt++) {
      let leaseId: string | undefined;
      if (needsLease) {
        try {
          leaseId = await this.lease!.current(deadline);
        } catch (err) {
          if (this.state !== 'open') throw new StoreError('closed', `${this.description} was closed during the commit`, { cause: err });
          throw this.unavailable('granting this replica\'s lease for the commit', reasonOf(err), err, false);
        }
      }
      try {
        const success: IRequestOp[] = ops.map((op) =>
          op.encoded === undefined ? { request_delete_range: { key: op.key } } : { request_put: { key: op.key, value: op.encoded, lease: op.ephemeral ? leaseId : 0 } },
        );
        const res = await this.conn!.client.kv.txn({ compare, success, failure }, this.conn!.call(deadline));
        return { res, leaseId };
      } catch (err) {
        if (leaseId !== undefined && isLeaseNotFound(err)) this.lease?.lost(leaseId);
        if (this.state !== 'open') throw new StoreError('closed', `${this.description} was closed during the commit`, { cause: err });
        if (reasons.size < 3) reasons.add(reasonOf(err));
        if (!wasNotApplied(err)) throw this.unavailable('the commit', [...reasons].join('; '), err, true);
        // Another attempt only with time for a round trip left: a call cut short by the deadline would be ambiguous.
        const left = deadline - Date.now() - MIN_ATTEMPT_MS;
        if (left <= 0) throw this.unavailable('the commit', [...reasons].join('; '), err, false);
        await sleep(Math.min(retryDelay(attempt), left), this.stopping.signal);
      }
    }
  }

  private unmet(expect: ReadonlyArray<StoreExpectation & { key: Buffer }>, res: ITxnResponse): string {
    for (let i = 0; i < expect.length; i++) {
      const e = expect[i] as StoreExpectation;
      const actual = Number(res.responses[i]?.response_range?.kvs[0]?.mod_revision ?? 0);
      if (actual !== e.revision) {
        const want = e.revision === 0 ? 'to be absent' : `at revision ${e.revision}`;
        const got = actual === 0 ? 'it is absent' : `it is at revision ${actual}`;
        return `expected ${objectKey(e.kind, e.namespace, e.name)} ${want}, but ${got}`;
      }
    }
    return 'an expectation did not hold';
  }

  private unavailable(what: string, reasons: string, err: unknown, ambiguous: boolean, then = 'writes resume by themselves once they are'): StoreError {
    const outcome = ambiguous
      ? `etcd did not confirm it within ${this.commitTimeoutMs} ms, so it may or may not have been applied: read the objects back before retrying`
      : 'nothing was written';
    const endpoints = this.endpoints.join(',');
    return new StoreError(
      'unavailable',
      `${this.description}: ${what} failed (${reasons}); ${outcome}. Check that a majority of the etcd members are running and reachable (etcdctl --endpoints=${endpoints} endpoint health); ${then}`,
      { cause: err },
    );
  }

  /** Resolves once the view includes `revision`; if the watch does not deliver it in time, reconnects it and goes on. */
  private seen(revision: number): Promise<void> {
    if (this.rev >= revision) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.timer !== timer);
        this.log.warn('etcd committed a revision that this replica\'s watch has not delivered yet; reconnecting the watch', { revision, seen: this.rev });
        this.watcher?.reconnect();
        resolve();
      }, this.commitTimeoutMs);
      this.waiters.push({ revision, resolve, timer });
    });
  }

  private flushWaiters(): void {
    if (this.waiters.length === 0) return;
    const pending: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.revision <= this.rev) {
        clearTimeout(w.timer);
        w.resolve();
      } else {
        pending.push(w);
      }
    }
    this.waiters = pending;
  }

  // ---- ephemeral objects ----

  private noteOwned(ops: readonly PreparedOp[], revision: number, leaseId: string | undefined): void {
    for (const op of ops) {
      const known = this.owned.get(op.objectKey);
      if (known !== undefined && known.revision > revision) continue;
      if (op.ephemeral && op.encoded !== undefined && leaseId !== undefined) {
        this.owned.set(op.objectKey, { kind: op.kind, namespace: op.namespace, name: op.name, encoded: op.encoded, revision });
      } else {
        this.owned.delete(op.objectKey);
      }
    }
  }

  /** After a lapsed lease was replaced: puts this replica's ephemeral objects again, unless someone re-created them. */
  private async reattach(leaseId: string): Promise<void> {
    let attached = 0;
    for (const [key, owned] of [...this.owned]) {
      for (let attempt = 0; ; attempt++) {
        if (this.state !== 'open' || this.lease?.id !== leaseId) return;
        if (this.owned.get(key) !== owned) break;
        const etcdKey = this.keys.key(owned.kind, owned.namespace, owned.name);
        try {
          const res = await this.conn!.client.kv.txn(
            {
              compare: [{ key: etcdKey, target: 'Mod', result: 'Equal', mod_revision: 0 }],
              success: [{ request_put: { key: etcdKey, value: owned.encoded, lease: leaseId } }],
              failure: [{ request_range: { key: etcdKey, keys_only: true } }],
            },
            this.conn!.call(Date.now() + this.commitTimeoutMs),
          );
          if (res.succeeded) {
            owned.revision = Number(res.header.revision);
            attached++;
          } else if (res.responses[0]?.response_range?.kvs[0]?.lease !== leaseId) {
            // Present under another lease (or none): another replica took the object over.
            this.owned.delete(key);
          }
          break;
        } catch (err) {
          if (isLeaseNotFound(err)) {
            this.lease?.lost(leaseId);
            return;
          }
          if (attempt === 0) this.log.warn('cannot attach an ephemeral object to the new lease yet; retrying', { object: key, reason: reasonOf(err) });
          await sleep(retryDelay(attempt, 100, 2000), this.stopping.signal);
        }
      }
    }
    this.log.info('ephemeral objects attached to the new etcd lease', { lease: leaseId, attached });
  }

  // ---- the view ----

  private onEvents(events: readonly IEvent[]): void {
    let i = 0;
    while (i < events.length) {
      const revision = Number((events[i] as IEvent).kv.mod_revision);
      const batch: StoreEvent[] = [];
      for (; i < events.length && Number((events[i] as IEvent).kv.mod_revision) === revision; i++) {
        if (revision > this.rev) this.applyEvent(events[i] as IEvent, revision, batch);
      }
      if (revision <= this.rev) continue;
      this.rev = revision;
      if (batch.length > 0) {
        this.sorted = undefined;
        this.emit(batch, revision);
      }
      this.flushWaiters();
    }
  }

  private applyEvent(ev: IEvent, revision: number, batch: StoreEvent[]): void {
    const id = this.keys.parse(ev.kv.key);
    if (id === undefined) return;
    const key = objectKey(id.kind, id.namespace, id.name);
    if (ev.type === 'Delete') {
      if (this.objects.delete(key)) batch.push(Object.freeze({ type: 'delete', kind: id.kind, namespace: id.namespace, name: id.name, revision }));
      return;
    }
    const object = this.decode(id, ev.kv);
    if (object === undefined) return;
    this.objects.set(key, object);
    batch.push(Object.freeze({ type: 'put', object }));
    const owned = this.owned.get(key);
    if (owned !== undefined && revision > owned.revision && !(this.lease?.owns(ev.kv.lease) ?? false)) this.owned.delete(key);
  }

  private emit(events: readonly StoreEvent[], revision: number): void {
    for (const listener of [...this.listeners]) {
      if (!this.listeners.has(listener)) continue;
      try {
        listener(events, revision);
      } catch (err) {
        this.log.error('a store listener threw', { revision, err });
      }
    }
  }

  /** Replaces the view with a fresh read; with `emit`, listeners get the difference as one batch of events. */
  private replaceAll(fresh: Map<string, StoredObject>, revision: number, emit: boolean): void {
    const events: StoreEvent[] = [];
    if (emit) {
      for (const [key, object] of fresh) {
        if (this.objects.get(key)?.revision !== object.revision) events.push(Object.freeze({ type: 'put', object }));
      }
      for (const [key, old] of this.objects) {
        if (!fresh.has(key)) events.push(Object.freeze({ type: 'delete', kind: old.kind, namespace: old.namespace, name: old.name, revision }));
      }
    }
    this.objects.clear();
    for (const [key, object] of fresh) this.objects.set(key, object);
    this.sorted = undefined;
    this.rev = Math.max(this.rev, revision);
    if (events.length > 0) this.emit(events, revision);
    this.flushWaiters();
  }

  /** The watch fell behind a compaction: reloads everything (until it succeeds or the store closes) and watches on. */
  private async recover(): Promise<void> {
    for (let attempt = 0; this.state === 'open'; attempt++) {
      try {
        const loaded = await this.load(Date.now() + this.commitTimeoutMs);
        if (this.state !== 'open') return;
        this.replaceAll(loaded.objects, loaded.revision, true);
        this.watcher?.start(loaded.revision + 1);
        this.log.info('etcd store reloaded after compaction', { revision: loaded.revision, objects: this.objects.size });
        return;
      } catch (err) {
        if (attempt === 0) this.log.warn('cannot reload from etcd yet; retrying', { reason: reasonOf(err) });
        await sleep(retryDelay(attempt, 100, 2000), this.stopping.signal);
      }
    }
  }

  /** load(), again after any failure (reads are safe to repeat) until `deadline`. */
  private async loadUntil(deadline: number): Promise<{ objects: Map<string, StoredObject>; revision: number }> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.load(deadline);
      } catch (err) {
        const delay = retryDelay(attempt);
        if (Date.now() + delay >= deadline || this.stopping.signal.aborted) throw err;
        await sleep(delay, this.stopping.signal);
      }
    }
  }

  /** Reads every object under the prefix, page by page, all at the revision of the first page. */
  private async load(deadline: number): Promise<{ objects: Map<string, StoredObject>; revision: number }> {
    const objects = new Map<string, StoredObject>();
    let revision = 0;
    let from = this.keys.start;
    for (;;) {
      const res = await this.conn!.client.kv.range({ key: from, range_end: this.keys.end, limit: LOAD_PAGE_SIZE, revision }, this.conn!.call(deadline));
      if (revision === 0) revision = Number(res.header.revision);
      for (const kv of res.kvs) {
        const id = this.keys.parse(kv.key);
        const object = id === undefined ? undefined : this.decode(id, kv);
        if (object !== undefined) objects.set(objectKey(object.kind, object.namespace, object.name), object);
      }
      const last = res.kvs[res.kvs.length - 1];
      // etcd says whether more keys follow; each page starts after the last key of the one before, so this ends.
      if (!res.more || last === undefined) return { objects, revision };
      from = Buffer.concat([last.key, Buffer.from([0])]);
    }
  }

  private decode(id: ObjectId, kv: IKeyValue): StoredObject | undefined {
    let value: unknown;
    try {
      value = JSON.parse(kv.value.toString('utf8'));
    } catch {
      this.log.warn('skipping an etcd key whose value is not JSON', { key: kv.key.toString('utf8') });
      return undefined;
    }
    return freezeObject(id.kind, id.namespace, id.name, value, Number(kv.mod_revision), kv.lease !== '0');
  }
}

function checkId(o: { kind?: unknown; namespace?: unknown; name?: unknown }, where: string): ObjectId {
  for (const f of ['kind', 'namespace', 'name'] as const) {
    const v = o[f];
    if (typeof v !== 'string' || v === '') throw new TypeError(`${where}: ${f} must be a non-empty string`);
    // The parts are joined with '/' into the etcd key.
    if (v.includes('/')) throw new TypeError(`${where}: ${f} must not contain "/"`);
  }
  return { kind: o.kind as string, namespace: o.namespace as string, name: o.name as string };
}

