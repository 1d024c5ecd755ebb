// Apply and delete: validates a set of resources as one unit against the schemas and, together with what is stored,
// the cross-checks; then writes all of it in one commit, reporting created / configured / unchanged per object.

import { crossCheck, parseResourceValues, type ConfigProblem, type LoadedResource } from '../api/v1alpha1/load.js';
import { KINDS, type Resource } from '../api/v1alpha1/resources.js';
import { StoreError, type Store, type StoreExpectation, type StoreOp } from './store/store.js';

export type ApplyAction = 'created' | 'configured' | 'unchanged';
export interface ApplyResult {
  kind: string;
  namespace: string;
  name: string;
  action: ApplyAction;
}

/** A problem with one document of the request: its index in the list, the field path and the reason. */
export interface ApplyProblem {
  index: number;
  path: string;
  message: string;
}

const ORIGIN = 'request';

/** Problems found in the request's documents (positions `request#INDEX`); those about stored objects are not its fault. */
function requestProblems(problems: readonly ConfigProblem[]): ApplyProblem[] {
  const out: ApplyProblem[] = [];
  for (const p of problems) {
    const m = /^request#(\d+)$/.exec(p.file);
    if (m) out.push({ index: Number(m[1]), path: p.path, message: p.message });
  }
  return out;
}

export type ApplyOutcome = { ok: true; revision: number; results: ApplyResult[] } | { ok: false; problems: ApplyProblem[] };

function canonical(x: unknown): string {
  return JSON.stringify(x, (_k, val: unknown) => (val !== null && typeof val === 'object' && !Array.isArray(val) ? Object.fromEntries(Object.entries(val as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : val));
}

/** Stored resources as the cross-checks see them; they were validated when applied, so they carry no positions. */
function storedResources(store: Store, replaced: ReadonlySet<string>): LoadedResource[] {
  const out: LoadedResource[] = [];
  for (const kind of Object.keys(KINDS)) {
    for (const o of store.list(kind)) {
      if (replaced.has(`${o.kind}/${o.namespace}/${o.name}`)) continue;
      const source = { file: `stored ${o.kind} ${o.namespace}/${o.name}`, line: 0, column: 0 };
      out.push({ resource: o.value as Resource, source, locate: () => source });
    }
  }
  return out;
}

export async function applyResources(store: Store, values: readonly unknown[], dryRun = false): Promise<ApplyOutcome> {
  const parsed = parseResourceValues(values, ORIGIN);
  if (!parsed.ok) return { ok: false, problems: requestProblems(parsed.problems) };
  const applied = parsed.resources;
  const resources = applied.map((l) => l.resource);
  for (let attempt = 0; ; attempt++) {
    const keys = new Set(resources.map((r) => `${r.kind}/${r.metadata.namespace}/${r.metadata.name}`));
    const cross = requestProblems(crossCheck([...storedResources(store, keys), ...applied]));
    if (cross.length > 0) return { ok: false, problems: cross };

    const ops: StoreOp[] = [];
    const expect: StoreExpectation[] = [];
    const results: ApplyResult[] = [];
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    for (const applied of resources) {
      const { namespace, name } = applied.metadata;
      const stored = store.get(applied.kind, namespace, name);
      // Creation time is the control plane's to set (route precedence prefers older routes); an update keeps it.
      const created = applied.metadata.creationTimestamp ?? (stored?.value as Resource | undefined)?.metadata.creationTimestamp ?? now;
      const r = { ...applied, metadata: { ...applied.metadata, creationTimestamp: created } } as Resource;
      const action: ApplyAction = stored === undefined ? 'created' : canonical(stored.value) === canonical(r) ? 'unchanged' : 'configured';
      results.push({ kind: r.kind, namespace, name, action });
      if (action === 'unchanged') continue;
      ops.push({ op: 'put', kind: r.kind, namespace, name, value: r });
      expect.push({ kind: r.kind, namespace, name, revision: stored?.revision ?? 0 });
    }
    if (dryRun || ops.length === 0) return { ok: true, revision: store.revision(), results };
    try {
      return { ok: true, revision: await store.commit(ops, expect), results };
    } catch (err) {
      // Another replica wrote one of these objects in between: look again with its change in view.
      if (err instanceof StoreError && err.code === 'conflict' && attempt < 3) continue;
      throw err;
    }
  }
}

export async function deleteResource(store: Store, kind: string, namespace: string, name: string): Promise<number | undefined> {
  const stored = store.get(kind, namespace, name);
  if (stored === undefined) return undefined;
  return store.commit([{ op: 'delete', kind, namespace, name }]);
}
