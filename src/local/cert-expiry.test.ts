// Certificate expiry as `mycel check` sees it, on real certificates from the development CA issued at chosen times.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDevCa, issueWorkloadCert } from '../security/dev-ca.js';
import { certificateExpiries, expiryState, humanDuration } from './cert-expiry.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

test('near expiry is 7 days, or a fifth of the lifetime when that is shorter', () => {
  const now = Date.parse('2030-01-10T00:00:00Z');
  const year = (left: number) => expiryState(new Date(now - 300 * DAY), new Date(now + left), now);
  assert.equal(year(8 * DAY), 'ok');
  assert.equal(year(6 * DAY), 'near-expiry');
  assert.equal(year(-1), 'expired');
  // A 24 h workload certificate: near expiry in its last 4.8 h only.
  const day = (left: number) => expiryState(new Date(now - (DAY - left)), new Date(now + left), now);
  assert.equal(day(20 * HOUR), 'ok');
  assert.equal(day(4 * HOUR), 'near-expiry');
  assert.equal(humanDuration(3 * DAY), '3 d');
  assert.equal(humanDuration(5 * HOUR + 1), '5 h');
  assert.equal(humanDuration(90_000), '1 min');
});

test('certificateExpiries reads every .crt of a directory, soonest first, and names what it cannot read', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mycel-expiry-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const now = Date.now();
  const ca = await createDevCa({ now: new Date(now - 10 * DAY) });
  const fresh = await issueWorkloadCert(ca, { trustDomain: 'mycel.local', service: 'web' });
  const old = await issueWorkloadCert(ca, { trustDomain: 'mycel.local', service: 'api', now: new Date(now - 2 * DAY), lifetimeSeconds: DAY / 1000 });
  await writeFile(join(dir, 'ca.crt'), ca.certPem);
  await writeFile(join(dir, 'web.crt'), fresh.certPem);
  await writeFile(join(dir, 'api.crt'), old.certPem);
  await writeFile(join(dir, 'broken.crt'), 'not a certificate');
  await writeFile(join(dir, 'web.key'), fresh.keyPem);
  const list = await certificateExpiries(dir, now);
  assert.deepEqual(list.map((c) => [c.file.slice(dir.length + 1), c.state]), [
    ['api.crt', 'expired'],
    ['broken.crt', 'unreadable'],
    ['web.crt', 'ok'],
    ['ca.crt', 'ok'],
  ]);
  assert.equal(list[0]!.name, 'spiffe://mycel.local/ns/default/svc/api');
  assert.deepEqual(await certificateExpiries(join(dir, 'missing')), []);
});
