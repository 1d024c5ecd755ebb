// A weighted split through real sidecars: 10,000 requests over a 90/10 HTTPRoute land on the two versions within
// statistical bounds (binomial, 5 standard deviations), and a 0-weight backend gets nothing.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDevCertificates } from '../../src/security/dev-ca.js';
import { startHttpApp, type TestApp } from '../helpers/apps.js';
import { portOf, startSidecar, type SidecarProcess } from '../helpers/sidecars.js';

const N = 10_000;
let dir: string;
let apps: TestApp[] = [];
const sidecars: SidecarProcess[] = [];
let web: SidecarProcess;

const SERVICE = (eps: string) => `apiVersion: mycel.dev/v1alpha1
kind: Service
metadata: { name: api }
spec:
  ports: [ { port: 80, appProtocol: http } ]
  subsets: [ { name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } }, { name: v3, labels: { version: v3 } } ]
${eps}`;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mycel-split-'));
  await writeDevCertificates(dir, { services: ['web', 'api'] });
  apps = await Promise.all([startHttpApp(), startHttpApp(), startHttpApp()]);
  const apiConfig = join(dir, 'api.yaml');
  await writeFile(apiConfig, SERVICE(''));
  for (const app of apps) sidecars.push(await startSidecar({ dir, service: 'api', appPort: app.port, configFiles: [apiConfig] }));
  const eps = sidecars.map((s, i) => `    - { address: 127.0.0.1, port: ${portOf(s.inbound)}, labels: { version: v${i + 1} } }`).join('\n');
  const webConfig = join(dir, 'web.yaml');
  await writeFile(
    webConfig,
    `${SERVICE(`  endpoints:\n${eps}\n`)}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: canary }
spec:
  parentRefs: [ { name: api } ]
  rules:
  - backendRefs:
    - { group: mycel.dev, kind: ServiceSubset, name: api.v1, weight: 90 }
    - { group: mycel.dev, kind: ServiceSubset, name: api.v2, weight: 10 }
    - { group: mycel.dev, kind: ServiceSubset, name: api.v3, weight: 0 }
`,
  );
  web = await startSidecar({ dir, service: 'web', appPort: 1, configFiles: [webConfig], upstreams: ['api=127.0.0.1:0'] });
  sidecars.push(web);
});

after(async () => {
  await Promise.all(sidecars.map((s) => s.stop('SIGKILL')));
  await Promise.all(apps.map((a) => a.close()));
  await rm(dir, { recursive: true, force: true });
});

test('a 90/10 split over 10,000 requests lands within 5 sigma, and a weight of 0 gets nothing', async () => {
  const addr = web.upstreams.api as string;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  let sent = 0;
  let failed = 0;
  const worker = async () => {
    while (sent < N) {
      sent++;
      const status = await new Promise<number>((resolve) => {
        const req = http.request({ host: '127.0.0.1', port: portOf(addr), path: '/split', agent }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', () => resolve(0));
        req.end();
      });
      if (status !== 200) failed++;
    }
  };
  try {
    await Promise.all(Array.from({ length: 16 }, worker));
  } finally {
    agent.destroy();
  }
  assert.equal(failed, 0);
  const [v1, v2, v3] = apps.map((a) => a.seen.filter((s) => s.url === '/split').length) as [number, number, number];
  assert.equal(v1 + v2 + v3, N);
  assert.equal(v3, 0, 'a backend of weight 0 gets no traffic');
  const sigma = Math.sqrt(N * 0.1 * 0.9); // 30
  assert.ok(Math.abs(v2 - N * 0.1) <= 5 * sigma, `v2 got ${v2} of ${N}, expected ${N * 0.1} +- ${5 * sigma}`);
});
