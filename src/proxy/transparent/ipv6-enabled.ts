// Whether IPv6 is on in the current network namespace (/proc/sys/net is per namespace): it is when an interface other
// than loopback has it enabled, which is when an IPv6 connection can arrive from or leave for another host.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** `confDir` is the sysctl tree to read (tests give their own). No such tree: a kernel without IPv6. */
export function ipv6Enabled(confDir = '/proc/sys/net/ipv6/conf'): boolean {
  let names: string[];
  try {
    names = readdirSync(confDir);
  } catch {
    return false;
  }
  for (const name of names) {
    if (name === 'all' || name === 'default' || name === 'lo') continue;
    try {
      if (readFileSync(join(confDir, name, 'disable_ipv6'), 'utf8').trim() === '0') return true;
    } catch {
      // The interface went away while we looked.
    }
  }
  return false;
}
