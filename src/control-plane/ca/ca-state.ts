// The mesh CA's shared state, kept in the store so that every replica serves the same trust bundle: the roots
// (certificates only, never keys), which root issues now, and the intermediates replicas made (for status and expiry).

import { StoreError, type Store } from '../store/store.js';

export const CA_KIND = 'MeshCaState';
const CA_NS = 'mycel-system';
const CA_NAME = 'mesh-ca';

export interface RootRecord {
  fingerprint: string;
  certPem: string;
  /** Unix ms. */
  notAfter: number;
  addedAt: string;
}

export interface IntermediateRecord {
  fingerprint: string;
  /** The root it chains to. */
  root: string;
  certPem: string;
  notAfter: number;
  /** The replica holding its key. */
  replica: string;
}

export interface CaState {
  roots: RootRecord[];
  /** Fingerprint of the root whose intermediates issue new leaves. */
  active: string;
  intermediates: IntermediateRecord[];
}

export function readCaState(store: Store): { state: CaState; revision: number } | undefined {
  const o = store.get(CA_KIND, CA_NS, CA_NAME);
  return o === undefined ? undefined : { state: o.value as CaState, revision: o.revision };
}

/** The trust bundle: every current root, oldest first. */
export function bundleOf(state: CaState): string {
  return state.roots.map((r) => r.certPem).join('');
}

/**
 * Changes the state with compare-and-set: `change` gets the current state (undefined before the first root) and
 * returns the next one, or a CaError-like throw. Retries a few times when another replica wrote in between.
 */
export async function updateCaState(store: Store, change: (current: CaState | undefined) => CaState): Promise<CaState> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const cur = readCaState(store);
    const next = change(cur?.state);
    try {
      await store.commit([{ op: 'put', kind: CA_KIND, namespace: CA_NS, name: CA_NAME, value: next }], [{ kind: CA_KIND, namespace: CA_NS, name: CA_NAME, revision: cur?.revision ?? 0 }]);
      return next;
    } catch (err) {
      if (!(err instanceof StoreError && err.code === 'conflict')) throw err;
    }
  }
  throw new Error('the CA state kept changing under this replica; try again');
}
