import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isPathProblem, normalizeRequestPath } from './request-path.js';

function norm(p: string): string {
  const n = normalizeRequestPath(p);
  assert.ok(!isPathProblem(n), `${p} was refused: ${isPathProblem(n) ? n.problem : ''}`);
  return n;
}

function refused(p: string, why: RegExp): void {
  const n = normalizeRequestPath(p);
  assert.ok(isPathProblem(n), `${p} was accepted as ${String(n)}`);
  assert.match(n.problem, why);
}

test('a canonical path is returned as the very same string', () => {
  for (const p of ['/', '/admin', '/admin/', '/a/b.c/d?x=1&y=/../z', '/ratings/1', '/pkg.Svc/Method', '/.well-known/x', '/a/.hidden', '/a..b/c.']) {
    assert.equal(normalizeRequestPath(p), p);
  }
});

test('dot segments are resolved, never above the root', () => {
  assert.equal(norm('/admin/../admin'), '/admin');
  assert.equal(norm('/public/../admin/users'), '/admin/users');
  assert.equal(norm('/./admin'), '/admin');
  assert.equal(norm('/../../admin'), '/admin');
  assert.equal(norm('/a/b/..'), '/a/');
  assert.equal(norm('/a/.'), '/a/');
  assert.equal(norm('/..'), '/');
  assert.equal(norm('/.'), '/');
});

test('runs of slashes merge into one; a trailing slash stays', () => {
  assert.equal(norm('//admin'), '/admin');
  assert.equal(norm('/a//b///c'), '/a/b/c');
  assert.equal(norm('/a//'), '/a/');
  assert.equal(norm('//'), '/');
});

test('escapes of unreserved characters are decoded, others kept in upper-case hex', () => {
  assert.equal(norm('/%61dmin'), '/admin');
  assert.equal(norm('/%2e%2e/admin'), '/admin');
  assert.equal(norm('/x/%2E%2E/admin'), '/admin');
  assert.equal(norm('/x/.%2e/admin'), '/admin');
  assert.equal(norm('/caf%c3%a9'), '/caf%C3%A9');
  assert.equal(norm('/a%20b'), '/a%20b');
  assert.equal(norm('/%7euser'), '/~user');
  assert.equal(norm('/100%25'), '/100%25');
});

test('the query is kept as it is, and its "/.." or escapes are not touched', () => {
  assert.equal(norm('/a/../b?next=/../x&q=%2F'), '/b?next=/../x&q=%2F');
  assert.equal(norm('/a?'), '/a?');
});

test('what servers disagree on is refused', () => {
  refused('/admin%2fusers', /encoded "\/"/);
  refused('/admin%2Fusers', /encoded "\/"/);
  refused('/admin%5cusers', /encoded/);
  refused('/admin\\users', /backslash/);
  refused('/admin;jsessionid=1', /";"/);
  refused('/admin/;/x', /";"/);
  refused('/admin#frag', /fragment/);
  refused('/a?b#frag', /fragment/);
  refused('/bad%zz', /two hex digits/);
  refused('/bad%4', /two hex digits/);
  refused('/bad%', /two hex digits/);
  refused('/a b', /control character/);
  refused('/a\u00e9', /non-ASCII/);
  refused('admin', /starting with/);
  refused('http://api/admin', /starting with/);
});

test('OPTIONS * passes', () => {
  assert.equal(normalizeRequestPath('*'), '*');
});

test('a ";" in the query is fine', () => {
  assert.equal(norm('/a?x=1;y=2'), '/a?x=1;y=2');
});
