// The in-memory side of a store: frozen objects by key under the current revision, sorted listings, and the one step
// that turns a commit's ops into changes and events (used by both commit and WAL replay, so both build the same objects).
import { objectKey, type StoreEvent, type StoreExpectation, type StoredObject } from './store.js';

/** An op as written to the WAL: only the fields that matter, checked. */
export type WalOp =
  | { op: 'put'; kind: string; namespace: string; name: string; value: unknown; ephemeral: boolean }
  | { op: 'delete'; kind: string; namespace: string; name: string };

export interface Change {
  readonly key: string;
  /** undefined: deleted. */
  readonly object: StoredObject | undefined;
}

/** Objects written by earlier commits of a batch (null: deleted there) that are not yet in the view. */
export type Staged = Map<string, StoredObject | null>;

export interface PlannedCommit {
  readonly changes: Change[];
  readonly events: StoreEvent[];
}

/** Checks and strips caller ops (or ops read back from the WAL); throws a TypeError naming the bad op. */
export function normalizeOps(ops: readonly unknown[]): WalOp[] {
  return ops.map((raw, i) => {
    const o = raw as Partial<Record<string, unknown>> | null;
    const where = `op ${i}`;
    if (typeof o !== 'object' || o === null) throw new TypeError(`${where}: not an object`);
    for (const f of ['kind', 'namespace', 'name'] as const) {
      if (typeof o[f] !== 'string' || o[f] === '') throw new TypeError(`${where}: ${f} must be a non-empty string`);
    }
    const id = { kind: o.kind as string, namespace: o.namespace as string, name: o.name as string };
    if (o.op === 'delete') return { op: 'delete', ...id };
    if (o.op !== 'put') throw new TypeError(`${where}: op must be "put" or "delete"`);
    if (o.value === undefined) throw new TypeError(`${where}: put needs a value`);
    return { op: 'put', ...id, value: o.value, ephemeral: o.ephemeral === true };
  });
}

export class ObjectView {
  private readonly byKey = new Map<string, StoredObject>();
  private sorted: StoredObject[] | undefined;
  private rev = 0;

  revision(): number {
    return this.rev;
  }

  lookup(key: string): StoredObject | undefined {
    return this.byKey.get(key);
  }

  get(kind: string, namespace: string, name: string): StoredObject | undefined {
    return this.byKey.get(objectKey(kind, namespace, name));
  }

  list(kind?: string): StoredObject[] {
    this.sorted ??= [...this.byKey.values()].sort(byKindNamespaceName);
    return kind === undefined ? this.sorted.slice() : this.sorted.filter((o) => o.kind === kind);
  }

  /** Makes one durable commit visible. */
  apply(changes: readonly Change[], revision: number): void {
    for (const c of changes) {
      if (c.object === undefined) this.byKey.delete(c.key);
      else this.byKey.set(c.key, c.object);
    }
    this.rev = revision;
    this.sorted = undefined;
  }

  /** Replaces everything with a snapshot's objects (values fresh from JSON.parse). */
  load(objects: readonly StoredObject[], revision: number): void {
    this.clear();
    for (const o of objects) {
      this.byKey.set(objectKey(o.kind, o.namespace, o.name), freezeObject(o.kind, o.namespace, o.name, o.value, o.revision, o.ephemeral));
    }
    this.rev = revision;
  }

  clear(): void {
    this.byKey.clear();
    this.sorted = undefined;
    this.rev = 0;
  }

  /** The object a commit sees: what earlier commits of its batch staged, else the view. */
  current(key: string, staged: Staged): StoredObject | undefined {
    const s = staged.get(key);
    return s === undefined ? this.byKey.get(key) : (s ?? undefined);
  }

  /** The first expectation that does not hold, described; undefined when all hold. */
  unmet(expect: readonly StoreExpectation[], staged: Staged): string | undefined {
    for (const e of expect) {
      const actual = this.current(objectKey(e.kind, e.namespace, e.name), staged)?.revision ?? 0;
      if (actual !== e.revision) {
        const want = e.revision === 0 ? 'to be absent' : `at revision ${e.revision}`;
        const got = actual === 0 ? 'it is absent' : `it is at revision ${actual}`;
        return `expected ${objectKey(e.kind, e.namespace, e.name)} ${want}, but ${got}`;
      }
    }
    return undefined;
  }

  /** Turns ops (whose values nobody else holds) into frozen objects and events under `revision`, staging them. */
  plan(ops: readonly WalOp[], revision: number, staged: Staged): PlannedCommit {
    const changes: Change[] = [];
    const events: StoreEvent[] = [];
    for (const op of ops) {
      const key = objectKey(op.kind, op.namespace, op.name);
      if (op.op === 'put') {
        const object = freezeObject(op.kind, op.namespace, op.name, op.value, revision, op.ephemeral);
        staged.set(key, object);
        changes.push({ key, object });
        events.push(Object.freeze({ type: 'put', object }));
      } else {
        const existed = this.current(key, staged) !== undefined;
        staged.set(key, null);
        changes.push({ key, object: undefined });
        if (existed) events.push(Object.freeze({ type: 'delete', kind: op.kind, namespace: op.namespace, name: op.name, revision }));
      }
    }
    return { changes, events };
  }
}

/** A stored object, frozen with its value (values are never mutated after commit). */
export function freezeObject(kind: string, namespace: string, name: string, value: unknown, revision: number, ephemeral: boolean): StoredObject {
  return Object.freeze({ kind, namespace, name, value: deepFreeze(value), revision, ephemeral });
}

function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  for (const v of Object.values(value)) deepFreeze(v);
  return Object.freeze(value);
}

/** The order of Store.list(): kind, namespace, name. */
export function byKindNamespaceName(a: StoredObject, b: StoredObject): number {
  return cmp(a.kind, b.kind) || cmp(a.namespace, b.namespace) || cmp(a.name, b.name);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
