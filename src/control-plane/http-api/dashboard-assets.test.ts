// The dashboard's files as served: content types by extension, a year of caching for content-hashed names and
// revalidation for index.html (also served at /), security headers on all, and nothing from subfolders.

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { CONTENT_SECURITY_POLICY, loadDashboardAssets } from './dashboard-assets.js';

let dir: string;
after(() => rm(dir, { recursive: true, force: true }));

test('serves the built files with their types and caching, and no more', async () => {
  dir = await mkdtemp(join(tmpdir(), 'mycel-assets-'));
  await writeFile(join(dir, 'index.html'), '<!doctype html><title>x</title>');
  await writeFile(join(dir, 'app-ABCD2345.js'), 'export {};');
  await writeFile(join(dir, 'app-WXYZ6789.css'), 'body{}');
  await writeFile(join(dir, 'favicon.svg'), '<svg/>');
  await writeFile(join(dir, 'notes.txt'), 'not served');
  await mkdir(join(dir, 'src'));
  await writeFile(join(dir, 'src', 'api.js'), 'not served either');

  const assets = loadDashboardAssets(dir);
  assert.deepEqual([...assets.keys()].sort(), ['/', '/app-ABCD2345.js', '/app-WXYZ6789.css', '/favicon.svg', '/index.html']);
  const index = assets.get('/')!;
  assert.equal(index.headers['content-type'], 'text/html; charset=utf-8');
  assert.equal(index.headers['cache-control'], 'no-cache');
  assert.equal(index.body.toString(), '<!doctype html><title>x</title>');
  const js = assets.get('/app-ABCD2345.js')!;
  assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
  assert.equal(js.headers['cache-control'], 'public, max-age=31536000, immutable');
  assert.equal(js.headers['content-length'], '10');
  assert.equal(assets.get('/app-WXYZ6789.css')!.headers['content-type'], 'text/css; charset=utf-8');
  assert.equal(assets.get('/favicon.svg')!.headers['content-type'], 'image/svg+xml');
  for (const a of assets.values()) {
    assert.equal(a.headers['content-security-policy'], CONTENT_SECURITY_POLICY);
    assert.equal(a.headers['x-content-type-options'], 'nosniff');
  }
  assert.match(CONTENT_SECURITY_POLICY, /script-src 'self'(;|$)/);
  assert.doesNotMatch(CONTENT_SECURITY_POLICY, /unsafe-inline|unsafe-eval|\*/);
});

test('a missing build is an empty set, not a crash', () => {
  assert.equal(loadDashboardAssets(join(tmpdir(), 'mycel-no-such-dashboard')).size, 0);
});
