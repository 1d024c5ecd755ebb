// Unit tests for the simulated mesh of the control-plane scale benchmark: reproducible, shaped as described, and made
// of resources the real schemas accept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseResourceValues } from '../../src/api/v1alpha1/load.js';
import { baseResources, buildModel, meshConfig, rareService, RARE_SERVICE, SERVICE_COUNT, serviceName } from './scale-model.js';

test('the same size always draws the same mesh', () => {
  assert.deepEqual(buildModel(300), buildModel(300));
  assert.notDeepEqual(buildModel(300).proxies, buildModel(300, { endpointShare: 0.1, rareShare: 0.005, minCallees: 2, maxCallees: 4, seed: 7 }).proxies);
});

test('every proxy calls 2 to 4 other services, never its own, with sorted unique subscriptions', () => {
  const m = buildModel(1000);
  assert.equal(m.services.length, SERVICE_COUNT);
  for (const p of m.proxies) {
    const ordinary = p.subscribe.filter((s) => s !== RARE_SERVICE);
    assert.ok(ordinary.length >= 2 && ordinary.length <= 4, `${p.proxyId} calls ${ordinary.length}`);
    assert.ok(!p.subscribe.includes(p.service), `${p.proxyId} calls itself`);
    assert.deepEqual(p.subscribe, [...new Set(p.subscribe)].sort());
  }
  assert.equal(new Set(m.proxies.map((p) => p.proxyId)).size, 1000);
});

test('popular services are called far more often than the tail', () => {
  const m = buildModel(2000);
  const callers = (svc: string) => m.proxies.filter((p) => p.subscribe.includes(svc)).length;
  assert.ok(callers(serviceName(0)) > 5 * callers(serviceName(SERVICE_COUNT - 1)), `${callers(serviceName(0))} vs ${callers(serviceName(SERVICE_COUNT - 1))}`);
});

test('only the rare callers subscribe to the rare service: 0.5% of the mesh, at least two', () => {
  for (const [n, expected] of [[100, 2], [1000, 5], [5000, 25]] as const) {
    const m = buildModel(n);
    assert.equal(m.rareCallers.length, expected);
    const subscribers = m.proxies.filter((p) => p.subscribe.includes(RARE_SERVICE)).map((p) => p.gid);
    assert.deepEqual(subscribers, m.rareCallers);
  }
});

test('about a tenth of the proxies register an endpoint, each with its own address', () => {
  const m = buildModel(2000);
  const withEndpoint = m.proxies.filter((p) => p.endpoint !== undefined);
  assert.equal(withEndpoint.length, m.endpoints);
  assert.ok(m.endpoints > 120 && m.endpoints < 280, `${m.endpoints} endpoints`);
  assert.equal(new Set(withEndpoint.map((p) => p.endpoint?.address)).size, m.endpoints);
  assert.ok(m.distinctViews > 1 && m.distinctViews <= 2000);
});

test('the applied resources pass the real schemas, and each change differs from the base', () => {
  const base = baseResources(buildModel(10).services, '300s', 20_000);
  const parsed = parseResourceValues([...base, meshConfig('301s'), rareService(20_001)], 'bench');
  assert.deepEqual(parsed.ok ? [] : parsed.problems, []);
  assert.equal(parsed.ok ? parsed.resources.length : 0, SERVICE_COUNT + 4);
  assert.notDeepEqual(rareService(20_001), base.at(-1));
});
