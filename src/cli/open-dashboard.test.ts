// Opening the browser: which command (BROWSER, the platform's opener, none without a display), and that a missing
// command resolves false instead of failing `mycel dashboard`.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { browserCommand, openInBrowser } from './open-dashboard.js';

test('the browser command: $BROWSER first, then the platform, none on a Linux without a display', () => {
  assert.deepEqual(browserCommand({ BROWSER: 'firefox' }, 'linux'), ['firefox']);
  assert.deepEqual(browserCommand({ DISPLAY: ':0' }, 'linux'), ['xdg-open']);
  assert.deepEqual(browserCommand({ WAYLAND_DISPLAY: 'wayland-0' }, 'linux'), ['xdg-open']);
  assert.equal(browserCommand({}, 'linux'), null);
  assert.equal(browserCommand({ DISPLAY: '' }, 'linux'), null);
  assert.deepEqual(browserCommand({}, 'darwin'), ['open']);
});

test('opening resolves true when the command starts and false when there is none', async () => {
  assert.equal(await openInBrowser('http://127.0.0.1:1/', ['true']), true);
  assert.equal(await openInBrowser('http://127.0.0.1:1/', ['mycel-no-such-browser-command']), false);
  assert.equal(await openInBrowser('http://127.0.0.1:1/', null), false);
});
