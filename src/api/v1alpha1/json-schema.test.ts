import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderJsonSchemas } from './json-schema.js';
import { DURATION_PATTERN } from './duration.js';
import { KINDS } from './resources.js';

const SCHEMAS_DIR = fileURLToPath(new URL('../../../../schemas/', import.meta.url));

type Node = { [key: string]: unknown };
/** Follows property names (and `oneOf` indexes as numbers) down a JSON Schema. */
function at(schema: unknown, ...keys: (string | number)[]): Node {
  let node = schema as Node;
  for (const k of keys) node = (typeof k === 'number' ? (node.oneOf as Node[])[k] : (node.properties as Record<string, Node>)[k]) as Node;
  assert.ok(node, `no ${keys.join('.')}`);
  return node;
}

test('schemas/ is generated from the valibot schemas and up to date (run `npm run schemas` if not)', () => {
  const rendered = renderJsonSchemas();
  assert.deepEqual(readdirSync(SCHEMAS_DIR).filter((f) => f.endsWith('.json')).sort(), [...rendered.keys()].sort());
  for (const [name, text] of rendered) assert.equal(readFileSync(SCHEMAS_DIR + name, 'utf8'), text, `schemas/${name} is stale`);
  assert.deepEqual(renderJsonSchemas(), rendered, 'the output is deterministic');
});

test('the JSON Schemas keep patterns, ranges, enums, defaults and descriptions', () => {
  const files = renderJsonSchemas();
  const tp = JSON.parse(files.get('TrafficPolicy.json')!) as Node;
  const budget = at(tp, 'spec', 'retry', 'budget');
  assert.deepEqual(at(budget, 'ratio'), { type: 'number', minimum: 0, maximum: 1, description: at(budget, 'ratio').description, default: 0.2 });
  assert.equal(at(budget, 'ttl').pattern, DURATION_PATTERN, 'durations carry the pattern of parseDuration');
  assert.equal(at(budget, 'ttl').default, '10s');
  assert.match(String(at(tp, 'spec', 'retry').description), /budget|Retries/);
  const retryOn = at(tp, 'spec', 'retry', 'retryOn');
  assert.deepEqual((retryOn.items as Node).enum, ['connect-failure', 'refused-stream', 'reset', '5xx', 'gateway-error', 'retriable-status-codes', 'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable']);
  assert.equal(at(tp, 'spec', 'loadBalancer', 3, 'type').const, 'RingHash');
  assert.equal(at(tp, 'spec', 'loadBalancer', 3, 'minimumRingSize').type, 'integer');
  assert.equal(at(tp, 'spec').additionalProperties, false, 'unknown fields are flagged in editors too');
  assert.deepEqual(at(tp, 'spec').required, ['targetRef']);

  const mesh = JSON.parse(files.get('MeshConfig.json')!) as Node;
  assert.equal(at(mesh, 'spec', 'certificates', 'renewAt').exclusiveMaximum, 1);
  assert.equal(at(mesh, 'spec', 'timeouts', 'connect').pattern, DURATION_PATTERN);
  assert.deepEqual(at(mesh, 'spec', 'telemetry', 'accessLog', 'format').enum, ['json', 'text']);
});

test('mycel.json accepts any kind, for editors of files that mix kinds', () => {
  const all = JSON.parse(renderJsonSchemas().get('mycel.json')!) as Node;
  assert.equal(all.$schema, 'http://json-schema.org/draft-07/schema#');
  assert.deepEqual(all.anyOf, Object.keys(KINDS).map((k) => ({ $ref: `#/definitions/${k}` })));
  const definitions = all.definitions as Record<string, Node>;
  for (const kind of Object.keys(KINDS)) assert.equal(at(definitions[kind], 'kind').const, kind);
});
