// The control plane's state behind one interface: resources and registered endpoints, each change under a
// monotonically increasing revision. Two implementations: `file` (embedded, WAL plus snapshot) and `etcd` (shared by replicas).

/** One stored object: a resource (`HTTPRoute`, `Service`, ...) or a registry entry (kind `Endpoint`). */
export interface StoredObject {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  /** The JSON value as committed; never mutated after commit. */
  readonly value: unknown;
  /** The revision of the commit that last wrote this object. */
  readonly revision: number;
  /**
   * Tied to the life of the control-plane replica that wrote it (etcd: attached to the replica's lease, so a stopped or
   * dead replica's entries vanish after the lease TTL unless another replica wrote them again meanwhile, which moves
   * them to its own lease). The file store keeps ephemeral objects like any other.
   */
  readonly ephemeral: boolean;
}

export type StoreOp =
  | { readonly op: 'put'; readonly kind: string; readonly namespace: string; readonly name: string; readonly value: unknown; readonly ephemeral?: boolean }
  | { readonly op: 'delete'; readonly kind: string; readonly namespace: string; readonly name: string };

/**
 * A precondition of a commit: the object's current revision must equal `revision` (0 = must not exist).
 * Lets two replicas apply at once without losing either change: the loser gets a `conflict` and retries.
 */
export interface StoreExpectation {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly revision: number;
}

export type StoreEvent =
  | { readonly type: 'put'; readonly object: StoredObject }
  | { readonly type: 'delete'; readonly kind: string; readonly namespace: string; readonly name: string; readonly revision: number };

/** Called with the events of one commit (this replica's or, for etcd, another's) after they are durable. */
export type StoreListener = (events: readonly StoreEvent[], revision: number) => void;

export type StoreErrorCode =
  /**
   * The backing store cannot be reached or has no quorum. Nothing was written, except after a commit timeout, when
   * the write may still land (etcd had it in flight): the message says so, and a retry of the same apply is harmless.
   */
  | 'unavailable'
  /** The disk is full; nothing was written, reads go on. */
  | 'disk-full'
  /** An expectation did not hold; nothing was written. */
  | 'conflict'
  /** The on-disk state cannot be read (not a torn last record, which is dropped, but damage before it). */
  | 'corrupt'
  /** The store was closed or not opened. */
  | 'closed';

export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreError';
  }
}

export interface StoreCloseOptions {
  /**
   * etcd: revoke this replica's lease, so that its ephemeral objects go now. By default the lease is left to lapse
   * after its TTL: a replica that stops cleanly hands its proxies over to another replica, whose re-registration moves
   * each object to that replica's lease before this one lapses. The file store has no leases and ignores it.
   */
  readonly revoke?: boolean;
}

export interface Store {
  /** `file:DIR` or `etcd:URL,...`, for logs and `/readyz`. */
  readonly description: string;
  /** Loads the whole state. Until it resolves, `list`/`get` see nothing and `commit` throws `closed`. */
  open(): Promise<void>;
  close(options?: StoreCloseOptions): Promise<void>;
  /** Revision of the last commit seen (0 for an empty store). */
  revision(): number;
  /** Objects from the in-memory view, optionally of one kind; sorted by kind, namespace, name. */
  list(kind?: string): StoredObject[];
  get(kind: string, namespace: string, name: string): StoredObject | undefined;
  /**
   * Applies all ops atomically, or none. Resolves with the new revision once the change is durable (fsynced, or
   * committed by an etcd quorum) and the in-memory view and listeners have seen it. An empty op list is a no-op that
   * resolves with the current revision.
   */
  commit(ops: readonly StoreOp[], expect?: readonly StoreExpectation[]): Promise<number>;
  /** Listens to every change after this call; returns the function that stops listening. */
  watch(listener: StoreListener): () => void;
}

export function objectKey(kind: string, namespace: string, name: string): string {
  return `${kind}/${namespace}/${name}`;
}
