// Applies and removes transparent mode's rules in the current network namespace, for IPv4 (iptables-save/-restore)
// and IPv6 (ip6tables-save/-restore), as root / CAP_NET_ADMIN; the rule text itself comes from iptables-rules.ts.
// Where IPv6 is on but cannot be intercepted, install refuses rather than leave IPv6 as a way around the sidecar.

import { execFile, spawn, spawnSync } from 'node:child_process';
import { FAMILIES, removalText, replaceText, type Family, type InterceptionOptions } from './iptables-rules.js';
import { ipv6Enabled } from './ipv6-enabled.js';

const TIMEOUT_MS = 10_000;

const TOOL: Record<Family, { save: string; restore: string }> = {
  ipv4: { save: 'iptables-save', restore: 'iptables-restore' },
  ipv6: { save: 'ip6tables-save', restore: 'ip6tables-restore' },
};

/** IPv6 is on in this namespace and its connections cannot be redirected; the message names the ways out. */
export class Ipv6InterceptionUnavailableError extends Error {}

export interface InstallResult {
  /** The families whose rules are in place. */
  families: Family[];
  /** Why IPv6 is not intercepted when it is not (IPv6 off in this namespace, or the operator's --ipv4-only). */
  ipv6Skipped: string | null;
}

function save(family: Family): Promise<string> {
  const tool = TOOL[family].save;
  return new Promise((resolve, reject) => {
    execFile(tool, ['-t', 'nat'], { timeout: TIMEOUT_MS, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err === null) resolve(stdout);
      else if ((err as NodeJS.ErrnoException).code === 'ENOENT') reject(new Error(`${tool} is not installed (the iptables package)`));
      else reject(new Error(`${tool} -t nat failed: ${(stderr || err.message).trim()} (transparent mode needs root and the iptables package)`));
    });
  });
}

function restore(family: Family, text: string): Promise<void> {
  const tool = TOOL[family].restore;
  return new Promise((resolve, reject) => {
    // --noflush: touch only what the text names; -w: wait for another tool holding the xtables lock.
    const p = spawn(tool, ['--noflush', '-w', '5'], { stdio: ['pipe', 'ignore', 'pipe'], timeout: TIMEOUT_MS });
    let stderr = '';
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    p.on('error', (err) => reject(new Error(`cannot run ${tool}: ${err.message} (install the iptables package)`)));
    p.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${tool} failed (exit ${code}): ${stderr.trim()}`));
    });
    p.stdin.end(text);
  });
}

/** Replaces whatever MYCEL_* rules the family's nat table holds with a fresh set, in one transaction. */
async function replace(family: Family, o: InterceptionOptions): Promise<void> {
  await restore(family, replaceText(await save(family), o, family));
}

/**
 * Takes the family's MYCEL_* rules out; false when there were none. `unreadableIsEmpty`: a nat table that cannot be
 * read (no ip6tables, no IPv6 nat in the kernel) holds no rules of ours.
 */
async function remove(family: Family, unreadableIsEmpty = false): Promise<boolean> {
  let saved: string;
  try {
    saved = await save(family);
  } catch (err) {
    if (unreadableIsEmpty) return false;
    throw err;
  }
  const text = removalText(saved);
  if (text === null) return false;
  await restore(family, text);
  return true;
}

/**
 * Installs the rules of both families, replacing any MYCEL_* chains already there (idempotent). IPv6 goes first:
 * when it cannot be intercepted while IPv6 is on, nothing has been installed yet when this throws. `ipv4Only`: the
 * operator accepts that IPv6 is not intercepted; IPv6 rules of ours left from before are taken out then.
 */
export async function installInterception(o: InterceptionOptions, opts: { ipv4Only: boolean }): Promise<InstallResult> {
  let ipv6Skipped: string | null = null;
  if (opts.ipv4Only) {
    await remove('ipv6', true);
    ipv6Skipped = 'the operator passed --ipv4-only';
  } else {
    try {
      await replace('ipv6', o);
    } catch (err) {
      const reason = (err as Error).message;
      if (ipv6Enabled()) {
        throw new Ipv6InterceptionUnavailableError(
          `IPv6 is on in this network namespace but its connections cannot be redirected: ${reason}. Without IPv6 rules the app's IPv6 connections would bypass the sidecar, inbound ones its mTLS and authorization too.\n` +
            '  fix: install ip6tables with its nat table (the iptables package; kernel ip6table_nat or nf_tables nat), or turn IPv6 off in the namespace (sysctl -w net.ipv6.conf.all.disable_ipv6=1), or pass --ipv4-only to accept that IPv6 is not intercepted',
        );
      }
      ipv6Skipped = `IPv6 is off in this network namespace (and ${reason})`;
    }
  }
  try {
    await replace('ipv4', o);
  } catch (err) {
    // Not half installed: IPv6 rules without the IPv4 ones would be a state nobody asked for.
    if (ipv6Skipped === null) await remove('ipv6', true).catch(() => false);
    throw err;
  }
  return { families: ipv6Skipped === null ? ['ipv4', 'ipv6'] : ['ipv4'], ipv6Skipped };
}

/**
 * Removes every MYCEL_* chain and jump of both families; returns false when there was none. IPv4 must be readable
 * (root, the iptables package); IPv6 without ip6tables or its nat table has no rules of ours to remove.
 */
export async function removeInterception(): Promise<boolean> {
  const v4 = await remove('ipv4');
  const v6 = await remove('ipv6', true);
  return v4 || v6;
}

/**
 * removeInterception for a process on its way out ('exit' handlers cannot wait): blocks for at most a few seconds
 * per family; returns the error text, or null when the rules are gone (or were never there).
 */
export function removeInterceptionSync(): string | null {
  const errors: string[] = [];
  for (const family of FAMILIES) {
    const { save: saveTool, restore: restoreTool } = TOOL[family];
    const saved = spawnSync(saveTool, ['-t', 'nat'], { encoding: 'utf8', timeout: TIMEOUT_MS });
    if (saved.status !== 0) {
      if (family === 'ipv4') errors.push(`${saveTool} failed: ${(saved.stderr ?? saved.error?.message ?? '').trim()}`);
      continue;
    }
    const text = removalText(saved.stdout);
    if (text === null) continue;
    const r = spawnSync(restoreTool, ['--noflush', '-w', '5'], { input: text, encoding: 'utf8', timeout: TIMEOUT_MS });
    if (r.status !== 0) errors.push(`${restoreTool} failed: ${(r.stderr ?? r.error?.message ?? '').trim()}`);
  }
  return errors.length === 0 ? null : errors.join('; ');
}
