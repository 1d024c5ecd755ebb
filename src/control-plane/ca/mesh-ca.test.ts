// The mesh CA over a real file store: a generated root, a supplied root or intermediate, what a replica without the
// key can do, the rotation steps, and the join tokens' TTL and single use.

import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate, webcrypto } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../core/log.js';
import { createDevCa } from '../../security/dev-ca.js';
import { splitPems } from '../../security/pem.js';
import { spendToken, sweepSpentTokens, tokenSpent, TokenAuthority } from '../auth/tokens.js';
import { FileStore } from '../store/file-store.js';
import { CaError, generateIntermediate, generateRoot } from './ca-certs.js';
import { MeshCa } from './mesh-ca.js';
import { dependingOn, notTrusting } from './rotation-checks.js';

x509.cryptoProvider.set(webcrypto);

const SETTINGS = { trustDomain: 'mycel.local', lifetimeSeconds: 60, backdateSeconds: 5 };
const who = { namespace: 'default', service: 'web' };

async function csr(): Promise<string> {
  const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  return (await x509.Pkcs10CertificateRequestGenerator.create({ keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams })).toString('pem');
}

describe('mesh CA', () => {
  let dir: string;
  const stores: FileStore[] = [];
  const openStore = async (name: string) => {
    const s = new FileStore(join(dir, name), { log: silentLogger });
    await s.open();
    stores.push(s);
    return s;
  };
  const open = (store: FileStore, stateDir: string, extra: { supplied?: { certPem: string; keyPem: string }; replica?: string } = {}) =>
    MeshCa.open({ store, stateDir: join(dir, stateDir), replica: extra.replica ?? 'r1', log: silentLogger, rootLifetimeSeconds: 86_400 * 30, ...(extra.supplied ? { supplied: extra.supplied } : {}) });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mycel-mesh-ca-'));
  });
  after(async () => {
    for (const s of stores) await s.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('a supplied intermediate issues directly; its root is the bundle', async () => {
    const root = await generateRoot({ lifetimeSeconds: 86_400 * 30 });
    const inter = await generateIntermediate(root, { lifetimeSeconds: 86_400 * 10 });
    const ca = await open(await openStore('s1'), 'st1', { supplied: { certPem: inter.certPem + root.certPem, keyPem: inter.keyPem } });
    const issued = await ca.issue(await csr(), who, SETTINGS);
    const chain = splitPems(issued.certChain);
    assert.equal(new X509Certificate(chain[1] as string).fingerprint256, new X509Certificate(inter.certPem).fingerprint256, 'the supplied intermediate signs');
    assert.equal(issued.root, root.fingerprint);
    assert.equal(issued.trustBundle, root.certPem);
    assert.deepEqual(ca.state().intermediates, [], 'no intermediate was made');
  });

  test('a supplied root gets an intermediate made under it; a root that cannot sign CAs, or an intermediate without its root, is refused', async () => {
    const root = await generateRoot({ lifetimeSeconds: 86_400 * 30 });
    const ca = await open(await openStore('s2'), 'st2', { supplied: { certPem: root.certPem, keyPem: root.keyPem } });
    const issued = await ca.issue(await csr(), who, SETTINGS);
    const inter = new X509Certificate(splitPems(issued.certChain)[1] as string);
    assert.ok(inter.verify(new X509Certificate(root.certPem).publicKey));
    assert.equal(ca.state().intermediates.length, 1);
    const dev = await createDevCa();
    await assert.rejects(open(await openStore('s3'), 'st3', { supplied: { certPem: dev.certPem, keyPem: dev.keyPem } }), /path length 0/);
    const inter2 = await generateIntermediate(root, { lifetimeSeconds: 86_400 });
    await assert.rejects(open(await openStore('s4'), 'st4', { supplied: { certPem: inter2.certPem, keyPem: inter2.keyPem } }), /without its root/);
    await assert.rejects(open(await openStore('s5'), 'st5', { supplied: { certPem: root.certPem, keyPem: inter2.keyPem } }), /does not belong/);
  });

  test('a second replica without the root key serves the bundle, refuses issuance with the reason, and verifies chains', async () => {
    const store = await openStore('s6');
    const first = await open(store, 'st6a', { replica: 'r1' });
    const second = await open(store, 'st6b', { replica: 'r2' });
    assert.equal(second.bundle(), first.bundle());
    await assert.rejects(second.issue(await csr(), who, SETTINGS), (err: unknown) => err instanceof CaError && err.status === 503 && /holds no key for the active root/.test(err.message));
    const issued = await first.issue(await csr(), who, SETTINGS);
    assert.equal(second.verifyChain(issued.certChain).service, 'web');
  });

  test('rotation: add, activate, remove; the active and the last root cannot be removed; a removed root\'s chains are refused', async () => {
    const ca = await open(await openStore('s7'), 'st7');
    const old = ca.state().active;
    const before = await ca.issue(await csr(), who, SETTINGS);
    const added = await ca.addRoot();
    assert.equal(ca.state().roots.length, 2);
    assert.equal(ca.state().active, old, 'adding does not switch issuance');
    assert.equal(splitPems(ca.bundle()).length, 2);
    await ca.activate(added.fingerprint.slice(0, 16));
    const after = await ca.issue(await csr(), who, SETTINGS);
    assert.equal(after.root, added.fingerprint);
    assert.equal(ca.verifyChain(before.certChain).root, old, 'old leaves stay valid during the overlap');
    await assert.rejects(ca.removeRoot(added.fingerprint), /still issues/);
    await ca.removeRoot(old);
    assert.deepEqual(ca.state().roots.map((r) => r.fingerprint), [added.fingerprint]);
    assert.throws(() => ca.verifyChain(before.certChain), /does not chain to a current root/);
    assert.throws(() => ca.resolveRoot('abc'), /no single root/);
  });

  test('the rotation checks name the proxies that are not ready', () => {
    const proxies = [
      { proxyId: 'a', service: 'web', namespace: 'default', certRoot: 'r1', trustedRoots: ['r1', 'r2'] },
      { proxyId: 'b', service: 'api', namespace: 'default', certRoot: 'r1', trustedRoots: ['r1'] },
      { proxyId: 'c', service: 'files', namespace: 'default' },
    ];
    assert.deepEqual(notTrusting('r2', proxies), ['default/api (b)'], 'a proxy with certificate files is not counted');
    assert.deepEqual(dependingOn('r1', proxies), ['default/web (a)', 'default/api (b)']);
    assert.deepEqual(dependingOn('r2', proxies), []);
  });

  test('join tokens: bound to one service, with an expiry and single use', async () => {
    const store = await openStore('s8');
    const tokens = await TokenAuthority.fromStore(store);
    const now = Date.now();
    assert.deepEqual(tokens.check(tokens.joinToken('default', 'web')), { role: 'proxy', namespace: 'default', service: 'web', via: 'token' });
    const ttl = tokens.joinToken('default', 'web', { ttlSeconds: 60, now });
    assert.equal((tokens.check(ttl, now + 59_000) as { service: string }).service, 'web');
    assert.match((tokens.check(ttl, now + 61_000) as { reason: string }).reason, /expired/);
    const tampered = ttl.replace('.default.web.', '.default.api.');
    assert.match((tokens.check(tampered) as { reason: string }).reason, /signature/, 'the service is under the signature');
    const once = tokens.check(tokens.joinToken('default', 'web', { singleUse: true })) as { singleUseId: string };
    assert.ok(once.singleUseId.length > 10);
    assert.equal(tokenSpent(store, once.singleUseId), false);
    assert.equal(await spendToken(store, once.singleUseId), true);
    assert.equal(await spendToken(store, once.singleUseId), false, 'spent once only');
    assert.equal(tokenSpent(store, once.singleUseId), true);
    // With a TTL the spent record is kept until the token has expired (plus a grace for slow clocks), then swept.
    const timed = tokens.check(tokens.joinToken('default', 'web', { singleUse: true, ttlSeconds: 60, now }), now) as { singleUseId: string; expiresAt: number };
    assert.equal(timed.expiresAt, (Math.floor(now / 1000) + 60) * 1000);
    assert.equal(await spendToken(store, timed.singleUseId, timed.expiresAt), true);
    assert.equal(await sweepSpentTokens(store, timed.expiresAt), 0, 'kept while the token could still be presented');
    assert.equal(tokenSpent(store, timed.singleUseId), true);
    assert.equal(await sweepSpentTokens(store, timed.expiresAt + 11 * 60_000), 1);
    assert.equal(tokenSpent(store, timed.singleUseId), false);
    assert.equal(tokenSpent(store, once.singleUseId), true, 'a record without an expiry stays');
  });
});
