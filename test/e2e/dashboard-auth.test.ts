// The dashboard on a real `mycel control`: its files at / for anyone, with their types and a strict CSP; its data
// only after signing in: `mycel dashboard` prints a one-time link that sets a read-only HttpOnly session cookie, the
// form takes the admin token, and neither a reused link, another origin's form nor the cookie's writes get through;
// `mycel up --open` and `mycel dashboard` hand the link to the browser.

import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startCli } from '../helpers/cli-process.js';
import { eventually, startControl, trustMeshRoots, type ControlProcess } from '../helpers/control.js';
import { run } from '../helpers/http.js';
import { MYCEL_BIN } from '../helpers/mycel-process.js';

const get = (url: string, headers: Record<string, string> = {}) => fetch(url, { headers, redirect: 'manual', signal: AbortSignal.timeout(15_000) });
const postForm = (url: string, body: string, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, redirect: 'manual', signal: AbortSignal.timeout(15_000) });

/** `name=value` of a Set-Cookie header, for sending it back. */
function cookieOf(res: Response): string {
  const set = res.headers.get('set-cookie');
  assert.ok(set !== null, 'a session cookie is set');
  return set.split(';')[0] as string;
}

describe('dashboard sign-in and files on mycel control', () => {
  let dir: string;
  let cp: ControlProcess;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mycel-dash-auth-'));
    cp = await startControl({ stateDir: dir });
  });
  after(async () => {
    await cp?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('serves the page and its bundle to anyone, with content types, caching and a strict CSP; no inline script', async () => {
    const page = await get(`${cp.url}/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(page.headers.get('cache-control'), 'no-cache');
    const csp = page.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.match(csp, /frame-ancestors 'none'/);
    const html = await page.text();
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'every script comes from a file');
    assert.doesNotMatch(html, /https?:\/\//, 'nothing from elsewhere');
    const js = /src="\/(app-\w+\.js)"/.exec(html)?.[1];
    const css = /href="\/(app-\w+\.css)"/.exec(html)?.[1];
    assert.ok(js !== undefined && css !== undefined, html);
    const jsRes = await get(`${cp.url}/${js}`);
    assert.equal(jsRes.status, 200);
    assert.equal(jsRes.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal(jsRes.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    assert.ok((await jsRes.arrayBuffer()).byteLength > 10_000, 'the bundle holds preact, d3-force and uPlot');
    assert.equal((await get(`${cp.url}/${css}`)).headers.get('content-type'), 'text/css; charset=utf-8');
    assert.equal((await get(`${cp.url}/nosuch.js`)).status, 404);
    assert.equal((await get(`${cp.url}/src/api.js`)).status, 404, 'only the bundle is served, not the compiled modules');
  });

  test('the API refuses a browser without a session', async () => {
    const res = await get(`${cp.url}/api/v1/proxies`);
    assert.equal(res.status, 401);
    assert.match(((await res.json()) as { message: string }).message, /mycel dashboard/);
  });

  test('mycel dashboard prints a one-time link; it sets a read-only HttpOnly session cookie', async () => {
    const r = await run(process.execPath, [MYCEL_BIN, 'dashboard', '--dir', dir, '--no-browser']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^Dashboard: ${cp.url}/$`, 'm'));
    const link = /^Sign-in link \(works once, for 5 minutes\): (\S+)$/m.exec(r.stdout)?.[1];
    assert.ok(link !== undefined && link.startsWith(`${cp.url}/login?code=`), r.stdout);

    const first = await get(link);
    assert.equal(first.status, 303);
    assert.equal(first.headers.get('location'), '/');
    const setCookie = first.headers.get('set-cookie') ?? '';
    assert.match(setCookie, new RegExp(`^mycel-session-${new URL(cp.url).port}=`));
    assert.match(setCookie, /; HttpOnly/);
    assert.match(setCookie, /; SameSite=Strict/);
    assert.match(setCookie, /; Secure/, 'served over TLS, the session cookie never travels in clear text');
    const cookie = cookieOf(first);

    const again = await get(link);
    assert.equal(again.status, 303);
    assert.equal(again.headers.get('location'), '/#login-expired', 'a link works once');
    assert.equal(again.headers.get('set-cookie'), null);

    const proxies = await get(`${cp.url}/api/v1/proxies`, { cookie });
    assert.equal(proxies.status, 200);
    assert.ok(Array.isArray(((await proxies.json()) as { items: unknown[] }).items));
    const services = await get(`${cp.url}/api/v1/resources/Service`, { cookie });
    assert.equal(services.status, 200);

    // The session reads; it changes nothing and mints nothing.
    const write = await fetch(`${cp.url}/api/v1/apply`, { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: JSON.stringify({ resources: [] }) });
    assert.equal(write.status, 403);
    assert.equal(((await write.json()) as { error: string }).error, 'read-only');
    const code = await fetch(`${cp.url}/api/v1/dashboard/login-codes`, { method: 'POST', headers: { cookie } });
    assert.equal(code.status, 403);
    const token = await fetch(`${cp.url}/api/v1/tokens`, { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: JSON.stringify({ service: 'web' }) });
    assert.equal(token.status, 403);

    // Sign-out clears the cookie.
    const out = await fetch(`${cp.url}/logout`, { method: 'POST', headers: { cookie }, redirect: 'manual' });
    assert.equal(out.status, 303);
    assert.match(out.headers.get('set-cookie') ?? '', /Max-Age=0/);
  });

  test('the sign-in form takes the admin token, from this origin only; a wrong token or cookie gets nothing', async () => {
    const ok = await postForm(`${cp.url}/login`, `token=${encodeURIComponent(cp.adminToken)}`, { origin: cp.url });
    assert.equal(ok.status, 303);
    const cookie = cookieOf(ok);
    assert.equal((await get(`${cp.url}/api/v1/proxies`, { cookie })).status, 200);

    const wrong = await postForm(`${cp.url}/login`, 'token=mycel-admin.forged');
    assert.equal(wrong.status, 303);
    assert.equal(wrong.headers.get('location'), '/#login-refused');
    assert.equal(wrong.headers.get('set-cookie'), null);

    const join = await cp.api<{ token: string }>('POST', '/api/v1/tokens', { service: 'web' });
    const joinLogin = await postForm(`${cp.url}/login`, `token=${encodeURIComponent(join.body.token)}`);
    assert.equal(joinLogin.headers.get('set-cookie'), null, 'a join token is no admin');

    const elsewhere = await postForm(`${cp.url}/login`, `token=${encodeURIComponent(cp.adminToken)}`, { origin: 'http://evil.example' });
    assert.equal(elsewhere.status, 403);
    assert.equal(elsewhere.headers.get('set-cookie'), null);

    const [name] = cookie.split('=');
    const forged = await get(`${cp.url}/api/v1/proxies`, { cookie: `${name}=mycel-session.99999999999999.abc.def` });
    assert.equal(forged.status, 401);
  });

  test('login codes need the admin token', async () => {
    const r = await cp.api<{ code: string; path: string; expiresAt: number }>('POST', '/api/v1/dashboard/login-codes');
    assert.equal(r.status, 200);
    assert.equal(r.body.path, `/login?code=${r.body.code}`);
    assert.ok(r.body.expiresAt > Date.now());
    const anonymous = await fetch(`${cp.url}/api/v1/dashboard/login-codes`, { method: 'POST' });
    assert.equal(anonymous.status, 401);
  });
});

test('mycel up --open and mycel dashboard open the signed-in link in the browser ($BROWSER)', async () => {
  const cwd = await mkdtemp(join(tmpdir(), 'mycel-dash-open-'));
  // A "browser" that writes down what it was asked to open.
  const browser = join(cwd, 'browser.sh');
  await writeFile(browser, `#!/bin/sh\necho "$1" >> '${join(cwd, 'opened')}'\n`, { mode: 0o755 });
  const up = startCli(['up', '--open', '--listen', '127.0.0.1:0'], { cwd, env: { BROWSER: browser } });
  try {
    await up.waitFor(/Opened it in your browser\./, 'stdout', 30_000);
    assert.match(up.stdout(), /The local mesh runs: control plane (\S+), dashboard \1\//);
    const opened = await eventually('the browser to be started', async () => (await readFile(join(cwd, 'opened'), 'utf8').catch(() => '')).trim() || undefined);
    assert.match(opened, /^https:\/\/127\.0\.0\.1:\d+\/login\?code=[\w-]+$/);
    trustMeshRoots(await readFile(join(cwd, '.mycel', 'ca.pem'), 'utf8'));
    const signIn = await get(opened);
    assert.equal(signIn.status, 303);
    assert.match(signIn.headers.get('set-cookie') ?? '', /HttpOnly/);

    const dashboard = startCli(['dashboard', '--dir', join(cwd, '.mycel')], { cwd, env: { BROWSER: browser } });
    const exit = await dashboard.exited;
    assert.equal(exit.code, 0, dashboard.stderr());
    // Under test there may be no desktop: with $BROWSER set it is used either way.
    assert.match(dashboard.stdout(), /Opened it in your browser\./);
    // The browser runs detached: its line may come after the command exits.
    const lines = await eventually('the second browser start', async () => {
      const l = (await readFile(join(cwd, 'opened'), 'utf8')).trim().split('\n');
      return l.length === 2 ? l : undefined;
    });
    assert.notEqual(lines[1], lines[0], 'a fresh code each time');
  } finally {
    await up.stop('SIGINT', 20_000);
    await rm(cwd, { recursive: true, force: true });
  }
});
