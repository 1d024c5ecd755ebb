// The config message built from serialized parts must be byte for byte what encodeMessage writes, and parse as one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeMessage, parseControlMessage } from '../../api/v1alpha1/stream-messages.js';
import { configMessage, resourcesJson } from './config-message.js';

test('configMessage writes the same bytes as encodeMessage', () => {
  const cases: Array<{ version: number; resources: unknown[]; unresolved: string[] }> = [
    { version: 1, resources: [], unresolved: [] },
    { version: 42, resources: [{ kind: 'Service', metadata: { name: 'a"b\n' }, spec: { ports: [{ port: 80 }] } }, { kind: 'MeshConfig', spec: {} }], unresolved: ['x.example', 'ü'] },
    { version: 9_007_199_254_740_991, resources: [{ nested: [null, true, 1.5, 'line\u2028sep'] }], unresolved: [] },
  ];
  for (const c of cases) {
    const built = configMessage(c.version, JSON.stringify(c.resources), JSON.stringify(c.unresolved));
    assert.equal(built, encodeMessage({ type: 'config', ...c }));
    assert.deepEqual(parseControlMessage(built.trimEnd()), { type: 'config', ...c });
  }
});

test('resourcesJson is JSON.stringify of the array, also when the same objects come again', () => {
  const shared = { kind: 'Service', metadata: { name: 'api' }, spec: { ports: [{ port: 80 }], endpoints: [{ address: '10.0.0.1', port: 15006 }] } };
  const mesh = { kind: 'MeshConfig', spec: { trustDomain: 'mycel.local' } };
  for (const list of [[], [shared], [mesh, shared], [shared, mesh, shared], [mesh, shared, { other: ['x', 1, null] }]]) {
    assert.equal(resourcesJson(list), JSON.stringify(list));
    assert.equal(resourcesJson(list), JSON.stringify(list));
  }
});
