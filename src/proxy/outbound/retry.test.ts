import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseResources } from '../../api/v1alpha1/load.js';
import { compilePlan } from '../config/plan.js';
import { RetryRegistry } from './retry.js';

function planWith(budget: string, attempts = 2) {
  const r = parseResources(`apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: api }
spec: { ports: [ { port: 80 } ] }
---
apiVersion: mycel.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: api }
spec:
  targetRef: { kind: Service, name: api }
  retry: { attempts: ${attempts}, budget: ${budget} }
`, 'x.yaml');
  assert.ok(r.ok);
  const svc = compilePlan(r.resources.map((x) => x.resource), 'web', 1).lookupHost('api')!;
  return { svc, retry: svc.policy!.retry! };
}

test('a destination keeps its retry budget across config changes that keep its numbers, and gets a new one otherwise', () => {
  const registry = new RetryRegistry(() => 0);
  const first = planWith('{ ratio: 0, minRetriesPerSecond: 1, ttl: 2s }');
  const d1 = registry.get(first.svc, first.retry);
  assert.equal(registry.get(first.svc, first.retry), d1, 'one lookup per plan');
  assert.ok(d1.budget.tryWithdraw() && d1.budget.tryWithdraw());
  assert.equal(d1.budget.tryWithdraw(), false, 'two retries per 2 s window, spent');

  // A config push that changes something else (attempts) compiles new objects but must not refill the budget.
  const second = planWith('{ ratio: 0, minRetriesPerSecond: 1, ttl: 2s }', 3);
  const d2 = registry.get(second.svc, second.retry);
  assert.notEqual(d2, d1);
  assert.equal(d2.policy.attempts, 3);
  assert.equal(d2.budget, d1.budget);
  assert.equal(d2.budget.tryWithdraw(), false);

  const third = planWith('{ ratio: 0, minRetriesPerSecond: 5, ttl: 2s }');
  const d3 = registry.get(third.svc, third.retry);
  assert.notEqual(d3.budget, d1.budget, 'new numbers: a new budget');
  assert.equal(registry.budget('default/api'), d3.budget);
  registry.retain(['default/web']);
  assert.equal(registry.budget('default/api'), undefined, 'a destination gone from the config is forgotten');
});
