// The control-plane replicas sharing one store: each announces itself (an ephemeral object with its API URL), so that
// `mycel get proxies` asked of any replica can list the proxies connected to all of them.

import type { FetchLike } from '../security/control-trust.js';
import type { Store } from './store/store.js';

export const REPLICA_KIND = 'ControlReplica';
const NS = 'mycel-system';

export interface ReplicaRecord {
  replica: string;
  url: string;
  startedAt: string;
  /** The replica's API server certificate (absent with --insecure-http): `mycel check` warns before it lapses. */
  apiCertificate?: { notAfter: number; issuedAt: number };
}

/** Announces this replica; with a store that has no leases (file), older announcements are this replica's past lives. */
export async function announceReplica(store: Store, self: ReplicaRecord, forgetOthers: boolean): Promise<void> {
  const stale = forgetOthers ? store.list(REPLICA_KIND).filter((o) => o.name !== self.replica) : [];
  await store.commit([
    ...stale.map((o) => ({ op: 'delete' as const, kind: REPLICA_KIND, namespace: NS, name: o.name })),
    { op: 'put', kind: REPLICA_KIND, namespace: NS, name: self.replica, value: self, ephemeral: true },
  ]);
}

export async function withdrawReplica(store: Store, replica: string): Promise<void> {
  if (store.get(REPLICA_KIND, NS, replica) === undefined) return;
  await store.commit([{ op: 'delete', kind: REPLICA_KIND, namespace: NS, name: replica }]);
}

export function otherReplicas(store: Store, self: string): ReplicaRecord[] {
  return store.list(REPLICA_KIND).filter((o) => o.name !== self).map((o) => o.value as ReplicaRecord);
}

/** Asks the other replicas for their proxies; an unreachable one is reported, not fatal. */
export async function proxiesOfOthers(store: Store, self: string, token: string, fetch: FetchLike): Promise<{ items: unknown[]; unreachable: Array<{ replica: string; url: string; reason: string }> }> {
  const r = await askOthers<{ items: unknown[] }>(store, self, token, fetch, '/api/v1/proxies?scope=local');
  return { items: r.answers.flatMap((a) => a.items), unreachable: r.unreachable };
}

/** GETs `path` from every other replica (2 s each, in parallel): the answers, and the replicas that gave none. */
export async function askOthers<T>(store: Store, self: string, token: string, fetch: FetchLike, path: string): Promise<{ answers: T[]; unreachable: Array<{ replica: string; url: string; reason: string }> }> {
  const answers: T[] = [];
  const unreachable: Array<{ replica: string; url: string; reason: string }> = [];
  await Promise.all(
    otherReplicas(store, self).map(async (r) => {
      try {
        const res = await fetch(`${r.url}${path}`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(2000) });
        if (res.status !== 200) throw new Error(`status ${res.status}`);
        answers.push((await res.json()) as T);
      } catch (err) {
        const e = err as Error & { cause?: { code?: string } };
        unreachable.push({ replica: r.replica, url: r.url, reason: e.cause?.code ?? e.message });
      }
    }),
  );
  return { answers, unreachable };
}
