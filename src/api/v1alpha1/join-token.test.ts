// The root fingerprint a printed join token carries: added, split off, and absent from tokens without one.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pinnedToken, splitPinnedToken } from './join-token.js';

const FP = 'a1'.repeat(32);

test('a pinned token splits into the token and the root fingerprint', () => {
  const text = pinnedToken('mycel-join.default.web.sig', FP);
  assert.equal(text, `mycel-join.default.web.sig~sha256:${FP}`);
  assert.deepEqual(splitPinnedToken(`${text}\n`), { token: 'mycel-join.default.web.sig', rootFingerprint: FP });
});

test('a token without a pin, or with a malformed one, is taken whole', () => {
  assert.deepEqual(splitPinnedToken('mycel-join.default.web.sig'), { token: 'mycel-join.default.web.sig' });
  assert.deepEqual(splitPinnedToken('mycel-join.x~sha256:abc'), { token: 'mycel-join.x~sha256:abc' });
  assert.deepEqual(splitPinnedToken(`~sha256:${FP}`), { token: `~sha256:${FP}` });
});
