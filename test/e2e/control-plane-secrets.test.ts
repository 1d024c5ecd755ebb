// Secrets never leak: a control plane over TLS with two sidecars, the usual operations (token create, apply, get of every
// kind including the internal ones, proxies, endpoints, stat, ca status, admin-cert), then every log line, CLI output and
// API answer is searched for the admin token, the join tokens, the token-signing key and any private key.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { splitPinnedToken } from '../../src/api/v1alpha1/join-token.js';
import { KINDS } from '../../src/api/v1alpha1/resources.js';
import { startHttpApp, type TestApp } from '../helpers/apps.js';
import { MESH_API_AND_WEB, eventually, expectWebReachesApi, startControl, type ControlProcess } from '../helpers/control.js';
import { startSidecar, type SidecarProcess } from '../helpers/sidecars.js';

let dir: string;
let cp: ControlProcess;
let app: TestApp;
let api: SidecarProcess;
let web: SidecarProcess;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mycel-secrets-'));
  cp = await startControl({ stateDir: join(dir, 'cp'), lease: '3s', extraArgs: ['--stats-interval', '300ms'] });
  await writeFile(join(dir, 'mesh.yaml'), MESH_API_AND_WEB);
  const applied = await cp.cli(['apply', '-f', join(dir, 'mesh.yaml')]);
  assert.equal(applied.code, 0, applied.stderr);
  app = await startHttpApp();
  api = await startSidecar({ dir, service: 'api', appPort: app.port, configFiles: [], meshCa: true, control: { url: cp.url, tokenFile: await cp.joinTokenFile('api') } });
  web = await startSidecar({ dir, service: 'web', appPort: 9, configFiles: [], meshCa: true, upstreams: ['api=127.0.0.1:0'], control: { url: cp.url, tokenFile: await cp.joinTokenFile('web') } });
});

after(async () => {
  await Promise.all([web?.stop(), api?.stop()]);
  await cp?.stop();
  await app?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Every file under `root` whose name ends in .key or is key.pem (CA keys, sidecars' workload keys, the admin key). */
async function keyFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(root, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && (e.name.endsWith('.key') || e.name === 'key.pem')) out.push(join(e.parentPath, e.name));
  }
  return out;
}

test('no log line, CLI output or API answer holds a token, the signing key or a private key', async () => {
  await expectWebReachesApi(web.upstreams.api as string, app);
  const seen: Array<{ what: string; text: string }> = [];
  const cli = async (...args: string[]) => {
    const r = await cp.cli(args);
    seen.push({ what: `mycel ${args.join(' ')}`, text: r.stdout + r.stderr });
    return r;
  };
  const get = async (path: string) => {
    const r = await cp.api('GET', path);
    seen.push({ what: `GET ${path}`, text: typeof r.body === 'string' ? r.body : JSON.stringify(r.body) });
    return r;
  };

  // The one place a join token is shown is its creation (not recorded in `seen`).
  const created = await cp.cli(['token', 'create', '--service', 'web', '--single-use']);
  assert.equal(created.code, 0, created.stderr);
  const joinTokens = [created.stdout.trim(), ...(await Promise.all(['api', 'web'].map(async (s) => (await readFile(join(dir, 'cp', `join-default-${s}.token`), 'utf8')).trim())))].map((t) => splitPinnedToken(t).token);
  assert.ok(joinTokens.every((t) => t.startsWith('mycel-join.')));
  assert.equal((await cli('apply', '-f', join(dir, 'mesh.yaml'))).code, 0);
  for (const kind of [...Object.keys(KINDS), 'ControlSecret', 'MeshCaState', 'UsedJoinToken', 'ControlReplica']) {
    const r = await cli('get', kind, '-o', 'json');
    if (!Object.keys(KINDS).includes(kind)) assert.notEqual(r.code, 0, `internal kind ${kind} is not listed`);
  }
  await eventually('both proxies in mycel get proxies', async () => ((await cli('get', 'proxies')).stdout.match(/ACK/g)?.length === 2 ? true : undefined));
  await cli('get', 'endpoints', 'api');
  await eventually('mycel stat shows traffic', async () => ((await cli('stat')).stdout.includes('api') ? true : undefined));
  await cli('ca', 'status', '-o', 'json');
  const adminCert = await cli('ca', 'admin-cert', '--out', join(dir, 'admin'));
  assert.equal(adminCert.code, 0, adminCert.stderr);
  for (const p of ['/api/v1/resources', '/api/v1/resources/controlsecret', '/api/v1/proxies', '/api/v1/ca', '/api/v1/ca/bundle', '/api/v1/stats', '/api/v1/endpoints/default/api', '/metrics']) await get(p);
  // A refused token is not echoed back either.
  const refused = await fetch(`${cp.url}/api/v1/resources`, { headers: { authorization: `Bearer ${joinTokens[0]}` } });
  seen.push({ what: 'a join token used on the admin API', text: await refused.text() });

  const signingKey = /"key":"([A-Za-z0-9+/=]{40,})"/.exec(await readFile(join(dir, 'cp', 'store', 'wal.log'), 'latin1'))?.[1];
  assert.ok(signingKey !== undefined, 'the signing key is in the store');
  const keys = await keyFiles(dir);
  assert.ok(keys.some((k) => k.includes(`${join('cp', 'ca')}/root-`)) && keys.some((k) => k.endsWith('key.pem')) && keys.some((k) => k.endsWith('admin.key')), keys.join('\n'));
  const keyBodies = await Promise.all(keys.map(async (k) => (await readFile(k, 'utf8')).split('\n').filter((l) => l.length > 0 && !l.startsWith('-----'))[0] as string));
  const secrets: Array<[string, string]> = [['the admin token', cp.adminToken], ['the signing key', signingKey], ...joinTokens.map((t, i): [string, string] => [`join token ${i}`, t]), ...keyBodies.map((b, i): [string, string] => [`private key ${keys[i]}`, b])];

  // Every log line of every process, after the operations above.
  seen.push({ what: 'control plane log', text: cp.logs.join('\n') + cp.stdout() });
  for (const s of [api, web]) seen.push({ what: `${s.service} sidecar log`, text: s.logs.join('\n') + s.stdout() });
  assert.ok(seen.length > 20);
  for (const { what, text } of seen) {
    assert.doesNotMatch(text, /PRIVATE KEY/, `${what} shows a private key`);
    for (const [name, secret] of secrets) assert.ok(!text.includes(secret), `${what} contains ${name}`);
  }
});
