// Golden tests of translate: each testdata/*.yaml holds a store's content and one proxy's request; the expected view
// sits beside it as *.golden.json. MYCEL_UPDATE_GOLDEN=1 rewrites the golden files from the current output.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type { StoredObject } from '../store/store.js';
import { MeshIndex, type EndpointRecord } from './mesh-index.js';
import { computeView, type ViewRequest } from './view.js';

const REPO = resolve(fileURLToPath(new URL('../../../../', import.meta.url)));
const DIR = join(REPO, 'src', 'control-plane', 'translate', 'testdata');

interface Case {
  request: ViewRequest;
  resources: Array<{ kind: string; metadata: { name: string; namespace?: string } }>;
  endpoints?: EndpointRecord[];
}

function stored(c: Case): StoredObject[] {
  let revision = 0;
  const out: StoredObject[] = c.resources.map((r) => ({ kind: r.kind, namespace: r.metadata.namespace ?? 'default', name: r.metadata.name, value: r, revision: ++revision, ephemeral: false }));
  for (const e of c.endpoints ?? []) out.push({ kind: 'Endpoint', namespace: e.namespace, name: e.proxyId, value: e, revision: ++revision, ephemeral: true });
  return out;
}

for (const file of readdirSync(DIR).filter((f) => f.endsWith('.yaml')).sort()) {
  test(`translate golden: ${file}`, () => {
    const c = parse(readFileSync(join(DIR, file), 'utf8')) as Case;
    const index = new MeshIndex();
    index.load(stored(c));
    const view = computeView(index, { ...c.request, subscriptions: [...c.request.subscriptions].sort() });
    const actual = JSON.stringify({ resources: view.resources, unresolved: view.unresolved, deps: [...view.deps].sort() }, null, 2) + '\n';
    const golden = join(DIR, file.replace(/\.yaml$/, '.golden.json'));
    if (process.env.MYCEL_UPDATE_GOLDEN === '1' || !existsSync(golden)) writeFileSync(golden, actual);
    assert.equal(actual, readFileSync(golden, 'utf8'), `${file}: the view changed; if intended, rerun with MYCEL_UPDATE_GOLDEN=1 and review the diff`);
  });
}

test('a change to a service nobody calls touches no view of its callers only', () => {
  const c = parse(readFileSync(join(DIR, 'scoped-to-callees.yaml'), 'utf8')) as Case;
  const index = new MeshIndex();
  index.load(stored(c));
  const web = computeView(index, { service: 'web', namespace: 'default', subscriptions: ['api'] });
  // db is not in web's dependencies, so an endpoint of db changing must not dirty web's view.
  const changes = index.apply([{ type: 'put', object: { kind: 'Endpoint', namespace: 'default', name: 'db-2', value: { service: 'db', namespace: 'default', address: '10.0.0.9', port: 15006, labels: {}, ready: true, proxyId: 'db-2', replica: 'r1' }, revision: 100, ephemeral: true } }]);
  assert.deepEqual([...changes.services], ['default/db']);
  assert.equal(changes.global, false);
  assert.equal(web.deps.has('default/db'), false);
  // An endpoint of a backend of api's route does touch web.
  const c2 = index.apply([{ type: 'delete', kind: 'Endpoint', namespace: 'default', name: 'api-2', revision: 101 }]);
  assert.ok([...c2.services].every((s) => web.deps.has(s)));
  assert.equal(computeView(index, { service: 'web', namespace: 'default', subscriptions: ['api'] }).resources.some((r) => JSON.stringify(r).includes('10.0.0.3')), false);
});

test('a route that moves from one parent to another leaves the old parent\'s view', () => {
  const index = new MeshIndex();
  const svc = (name: string): StoredObject => ({ kind: 'Service', namespace: 'default', name, value: { kind: 'Service', metadata: { name, namespace: 'default' }, spec: { ports: [{ port: 80 }] } }, revision: 1, ephemeral: false });
  const route = (parent: string, rev: number): StoredObject => ({ kind: 'HTTPRoute', namespace: 'default', name: 'r', value: { kind: 'HTTPRoute', metadata: { name: 'r', namespace: 'default' }, spec: { parentRefs: [{ name: parent }], rules: [{ backendRefs: [{ name: parent }] }] } }, revision: rev, ephemeral: false });
  index.load([svc('a'), svc('b'), route('a', 2)]);
  assert.equal(computeView(index, { service: 'x', namespace: 'default', subscriptions: ['a'] }).resources.filter((r) => (r as { kind: string }).kind === 'HTTPRoute').length, 1);
  const changes = index.apply([{ type: 'put', object: route('b', 3) }]);
  assert.deepEqual([...changes.services].sort(), ['default/a', 'default/b']);
  assert.equal(computeView(index, { service: 'x', namespace: 'default', subscriptions: ['a'] }).resources.filter((r) => (r as { kind: string }).kind === 'HTTPRoute').length, 0);
  assert.equal(computeView(index, { service: 'x', namespace: 'default', subscriptions: ['b'] }).resources.filter((r) => (r as { kind: string }).kind === 'HTTPRoute').length, 1);
});

test('a backendRef to a ServiceSubset (name: <service>.<subset>) brings that service into the caller\'s view', () => {
  const index = new MeshIndex();
  const svc = (name: string): StoredObject => ({ kind: 'Service', namespace: 'default', name, value: { kind: 'Service', metadata: { name, namespace: 'default' }, spec: { ports: [{ port: 80 }], subsets: [{ name: 'v2', labels: { version: 'v2' } }] } }, revision: 1, ephemeral: false });
  const route: StoredObject = { kind: 'HTTPRoute', namespace: 'default', name: 'r', value: { kind: 'HTTPRoute', metadata: { name: 'r', namespace: 'default' }, spec: { parentRefs: [{ name: 'a' }], rules: [{ backendRefs: [{ group: 'mycel.dev', kind: 'ServiceSubset', name: 'b.v2' }] }] } }, revision: 2, ephemeral: false };
  index.load([svc('a'), svc('b'), route]);
  const view = computeView(index, { service: 'x', namespace: 'default', subscriptions: ['a'] });
  assert.deepEqual([...view.deps].sort(), ['default/a', 'default/b', 'default/x']);
  assert.ok(view.resources.some((r) => (r as { kind: string; metadata: { name: string } }).kind === 'Service' && (r as { metadata: { name: string } }).metadata.name === 'b'));
});
