// The progress display without a terminal (logs, CI, pipes): one plain line per step, the fix under a failure.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Progress } from './progress.js';

test('steps print ✓ with their detail, failures ✗ with the first line of the error, and fixes under them', async () => {
  let out = '';
  const p = new Progress({ write: (s: string) => (out += s) }, false);
  assert.equal(await p.step('control plane ready', async () => 'http://x', (url) => url), 'http://x');
  await assert.rejects(p.step('sidecars ready', async () => {
    throw new Error('web exited\nits log ends with ...');
  }), /web exited/);
  p.line('warn', 'web.crt', 'expires in 3 h', 'restart web');
  assert.match(out, /^✓ control plane ready {2}http:\/\/x {2}\d+\.\d s\n✗ sidecars ready {2}web exited\n! web\.crt {2}expires in 3 h\n {4}fix: restart web\n$/);
});
