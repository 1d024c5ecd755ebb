import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ipv6Enabled } from './ipv6-enabled.js';

function confTree(disabled: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'mycel-ipv6conf-'));
  for (const [name, value] of Object.entries(disabled)) {
    mkdirSync(join(dir, name));
    writeFileSync(join(dir, name, 'disable_ipv6'), `${value}\n`);
  }
  return dir;
}

test('IPv6 is on when an interface other than loopback has it enabled', (t) => {
  const on = confTree({ all: '1', default: '1', lo: '0', eth0: '1', eth1: '0' });
  const off = confTree({ all: '0', default: '0', lo: '0', eth0: '1' });
  t.after(() => [on, off].forEach((d) => rmSync(d, { recursive: true, force: true })));
  assert.equal(ipv6Enabled(on), true);
  assert.equal(ipv6Enabled(off), false, 'loopback alone, and the defaults for interfaces not there, do not count');
  assert.equal(ipv6Enabled(join(off, 'no-such-tree')), false, 'a kernel without IPv6');
});
