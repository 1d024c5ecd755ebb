// AuthorizationPolicy and PeerAuthentication pushed by the control plane: `mycel apply` a policy and api's sidecar
// enforces it within a moment, `mycel delete` lifts it, a PeerAuthentication switches the inbound mode, and a policy
// whose path pattern could never match a normalised path is refused by apply.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDevCertificates } from '../../src/security/dev-ca.js';
import { startHttpApp, type TestApp } from '../helpers/apps.js';
import { MESH_API_AND_WEB, eventually, startControl, type ControlProcess } from '../helpers/control.js';
import { request } from '../helpers/http.js';
import { parseResponses, rawExchange, targetOf } from '../helpers/raw-http.js';
import { startSidecar, type SidecarProcess } from '../helpers/sidecars.js';

const BASE = MESH_API_AND_WEB;

const POLICY = `apiVersion: mycel.dev/v1alpha1
kind: AuthorizationPolicy
metadata: { name: no-admin }
spec:
  targetRef: { kind: Service, name: api }
  action: DENY
  rules: [ { to: [ { operation: { paths: [ /admin, /admin/* ] } } ] } ]
`;

const PERMISSIVE = `apiVersion: mycel.dev/v1alpha1
kind: PeerAuthentication
metadata: { name: api-mtls }
spec: { targetRef: { kind: Service, name: api }, mtls: { mode: PERMISSIVE } }
`;

describe('authorization and mTLS mode through the control plane', () => {
  let dir: string;
  let cp: ControlProcess;
  let app: TestApp;
  let api: SidecarProcess;
  let web: SidecarProcess;

  const get = (path: string) => request(web.upstreams.api as string, { path });
  const apply = async (name: string, yaml: string) => {
    await writeFile(join(dir, name), yaml);
    return cp.cli(['apply', '-f', join(dir, name)]);
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mycel-authz-cp-'));
    await writeDevCertificates(dir, { services: ['web', 'api'] });
    cp = await startControl({ stateDir: join(dir, 'cp'), lease: '3s' });
    assert.equal((await apply('base.yaml', BASE)).code, 0);
    app = await startHttpApp();
    api = await startSidecar({ dir, service: 'api', appPort: app.port, configFiles: [], control: { url: cp.url, tokenFile: await cp.joinTokenFile('api') } });
    web = await startSidecar({ dir, service: 'web', appPort: 9, configFiles: [], upstreams: ['api=127.0.0.1:0'], control: { url: cp.url, tokenFile: await cp.joinTokenFile('web') } });
    await eventually('web reaches api', async () => ((await get('/hello')).status === 200 ? true : undefined));
  });
  after(async () => {
    await Promise.all([web?.stop(), api?.stop()]);
    await cp?.stop();
    await app?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('an applied DENY policy is enforced by api\'s sidecar, and deleting it lifts it', async () => {
    assert.equal((await get('/admin')).status, 200);
    const r = await apply('policy.yaml', POLICY);
    assert.equal(r.code, 0, r.stderr);
    const denied = await eventually('the policy is enforced', async () => {
      const res = await get('/x/../admin');
      return res.status === 403 ? res : undefined;
    });
    assert.equal(denied.headers['x-mycel-error'], 'denied-by default/no-admin');
    assert.equal((await get('/hello')).status, 200);
    const d = await cp.cli(['delete', 'authorizationpolicy', 'no-admin']);
    assert.equal(d.code, 0, d.stderr);
    await eventually('the policy is lifted', async () => ((await get('/admin')).status === 200 ? true : undefined));
  });

  test('a path pattern that is not in normalised form is refused by apply (exit 2)', async () => {
    const r = await apply('bad.yaml', POLICY.replace('/admin/*', '/x/../admin/*'));
    assert.equal(r.code, 2);
    assert.match(r.stderr + r.stdout, /normalised form/);
  });

  test('a PeerAuthentication PERMISSIVE lets plain text in; deleting it makes api STRICT again', async () => {
    const plain = async () => parseResponses((await rawExchange(targetOf(api.inbound), 'GET /plain HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n')).data)[0]?.status ?? 0;
    assert.equal(await plain(), 0);
    assert.equal((await apply('pa.yaml', PERMISSIVE)).code, 0);
    await eventually('plain text is served', async () => ((await plain()) === 200 ? true : undefined));
    assert.equal(app.seen.at(-1)?.headers['x-mycel-peer-identity'], undefined);
    assert.equal((await cp.cli(['delete', 'peerauthentication', 'api-mtls'])).code, 0);
    await eventually('plain text is refused again', async () => ((await plain()) === 0 ? true : undefined));
  });
});
