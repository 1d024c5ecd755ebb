// Dashboard sign-in pieces: one-time login codes (once, before expiry, bounded), the per-port cookie, and the signed
// session tokens of the token authority (accepted until they expire, refused when altered or signed by another key).

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { silentLogger } from '../../core/log.js';
import { TokenAuthority } from '../auth/tokens.js';
import { FileStore } from '../store/file-store.js';
import { LOGIN_CODE_TTL_MS, LoginCodes, SESSION_TTL_MS, sessionCookie, sessionCookieName, sessionFromCookies } from './dashboard-login.js';

const T0 = 1_764_000_000_000;

describe('login codes', () => {
  test('a code signs in once', () => {
    const codes = new LoginCodes();
    const { code, expiresAt } = codes.issue(T0);
    assert.equal(expiresAt, T0 + LOGIN_CODE_TTL_MS);
    assert.match(code, /^[A-Za-z0-9_-]{24}$/);
    assert.equal(codes.redeem(code, T0 + 1000), true);
    assert.equal(codes.redeem(code, T0 + 2000), false, 'the second use is refused');
  });

  test('an expired or unknown code is refused', () => {
    const codes = new LoginCodes();
    const { code } = codes.issue(T0);
    assert.equal(codes.redeem(code, T0 + LOGIN_CODE_TTL_MS), false);
    assert.equal(codes.redeem('not-a-code', T0), false);
    assert.equal(codes.redeem('', T0), false);
  });

  test('codes outstanding are bounded: the oldest goes first', () => {
    const codes = new LoginCodes();
    const first = codes.issue(T0).code;
    const rest = Array.from({ length: 64 }, (_, i) => codes.issue(T0 + i).code);
    assert.equal(codes.redeem(first, T0 + 100), false, 'pushed out by the 65th');
    assert.equal(codes.redeem(rest[0] as string, T0 + 100), true);
    assert.equal(codes.redeem(rest[63] as string, T0 + 100), true);
  });
});

describe('the session cookie', () => {
  test('is named for the port, so two meshes on one host keep their own sessions', () => {
    assert.equal(sessionCookieName('127.0.0.1:7400'), 'mycel-session-7400');
    assert.equal(sessionCookieName('[::1]:7401'), 'mycel-session-7401');
    assert.equal(sessionCookieName('mesh.example'), 'mycel-session-default');
    assert.equal(sessionFromCookies('a=1; mycel-session-7401=other; mycel-session-7400=mine', '127.0.0.1:7400'), 'mine');
    assert.equal(sessionFromCookies('mycel-session-7401=other', '127.0.0.1:7400'), undefined);
    assert.equal(sessionFromCookies(undefined, '127.0.0.1:7400'), undefined);
  });

  describe('with a token authority', () => {
    let dir: string;
    let store: FileStore;
    after(async () => {
      await store?.close();
      await rm(dir, { recursive: true, force: true });
    });

    test('is HttpOnly, SameSite=Strict, and carries a session the authority accepts until it expires', async () => {
      dir = await mkdtemp(join(tmpdir(), 'mycel-session-'));
      store = new FileStore(dir, { log: silentLogger });
      await store.open();
      const tokens = await TokenAuthority.fromStore(store);
      const cookie = sessionCookie(tokens, '127.0.0.1:7400', T0, false);
      assert.match(cookie, /^mycel-session-7400=mycel-session\.\d+\.[\w-]+\.[\w-]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/);
      assert.match(sessionCookie(tokens, '127.0.0.1:7400', T0, true), /; Secure$/);
      const token = sessionFromCookies(cookie.split(';')[0], '127.0.0.1:7400') as string;
      assert.equal(tokens.verifySession(token, T0 + SESSION_TTL_MS - 1), true);
      assert.equal(tokens.verifySession(token, T0 + SESSION_TTL_MS), false, 'expired');
      const [prefix, expires, nonce, mac] = token.split('.');
      assert.equal(tokens.verifySession(`${prefix}.${Number(expires) + 3600_000}.${nonce}.${mac}`, T0), false, 'a longer life is not signed');
      assert.equal(tokens.verifySession(tokens.adminToken(), T0), false, 'the admin token is not a session');
      assert.equal(tokens.verify(token), undefined, 'a session is not a bearer token');
    });
  });
});
