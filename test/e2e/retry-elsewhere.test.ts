// A retry goes to another endpoint when there is one: with two endpoints, one of them dead, and a balancer that may
// pick the same endpoint twice in a row (least request breaks ties at random), every request's retry must reach the
// live one. (Found by the chaos ledger: concurrent requests taking round robin's turns sent all three attempts of a
// POST to a draining sidecar.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDevCertificates } from '../../src/security/dev-ca.js';
import { startHttpApp } from '../helpers/apps.js';
import { closedPort, request } from '../helpers/http.js';
import { meshDocs, portOf, startSidecar } from '../helpers/sidecars.js';

test('each retry of a request avoids the endpoint that just failed it', { timeout: 60_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mycel-retry-elsewhere-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeDevCertificates(dir, { services: ['web', 'api'] });
  const app = await startHttpApp();
  t.after(() => app.close());
  const apiConfig = join(dir, 'api.yaml');
  await writeFile(apiConfig, meshDocs({ apiAppPort: app.port }, []));
  const api = await startSidecar({ dir, service: 'api', appPort: app.port, configFiles: [apiConfig] });
  t.after(() => api.stop('SIGKILL'));
  const dead = await closedPort();
  const policy = `apiVersion: mycel.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: api }
spec:
  targetRef: { kind: Service, name: api }
  loadBalancer: { type: LeastRequest }
  retry: { attempts: 1, retryOn: [ connect-failure ], backoff: { baseInterval: 1ms, maxInterval: 2ms } }
`;
  const webConfig = join(dir, 'web.yaml');
  await writeFile(webConfig, meshDocs({ apiAppPort: app.port, extraWebDocs: policy }, [{ address: '127.0.0.1', port: portOf(api.inbound) }, { address: '127.0.0.1', port: dead }]));
  const web = await startSidecar({ dir, service: 'web', appPort: 1, configFiles: [webConfig], upstreams: ['api=127.0.0.1:0'] });
  t.after(() => web.stop('SIGKILL'));
  // One at a time: nothing in flight, so least request's two draws tie and either endpoint may come first.
  const statuses: number[] = [];
  for (let i = 0; i < 24; i++) statuses.push((await request(web.upstreams.api as string, { path: `/r${i}` })).status);
  assert.deepEqual(statuses, Array(24).fill(200), 'a request whose first try hit the dead endpoint was retried on the live one');
});
