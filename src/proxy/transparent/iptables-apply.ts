// Applies and removes transparent mode's rules in the current network namespace by running iptables-save and
// iptables-restore (root / CAP_NET_ADMIN); the rule text itself comes from iptables-rules.ts.

import { execFile, spawn, spawnSync } from 'node:child_process';
import { removalText, replaceText, type InterceptionOptions } from './iptables-rules.js';

const TIMEOUT_MS = 10_000;

function save(): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('iptables-save', ['-t', 'nat'], { timeout: TIMEOUT_MS, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`iptables-save -t nat failed: ${(stderr || err.message).trim()} (transparent mode needs root and the iptables package)`));
      else resolve(stdout);
    });
  });
}

function restore(text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    // --noflush: touch only what the text names; -w: wait for another tool holding the xtables lock.
    const p = spawn('iptables-restore', ['--noflush', '-w', '5'], { stdio: ['pipe', 'ignore', 'pipe'], timeout: TIMEOUT_MS });
    let stderr = '';
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    p.on('error', (err) => reject(new Error(`cannot run iptables-restore: ${err.message} (install the iptables package)`)));
    p.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`iptables-restore failed (exit ${code}): ${stderr.trim()}`));
    });
    p.stdin.end(text);
  });
}

/** Installs the rules, replacing any MYCEL_* chains already there (idempotent); returns the text applied. */
export async function installInterception(o: InterceptionOptions): Promise<string> {
  const text = replaceText(await save(), o);
  await restore(text);
  return text;
}

/** Removes every MYCEL_* chain and jump; returns false when there was none. */
export async function removeInterception(): Promise<boolean> {
  const text = removalText(await save());
  if (text === null) return false;
  await restore(text);
  return true;
}

/**
 * removeInterception for a process on its way out ('exit' handlers cannot wait): blocks for at most a few seconds;
 * returns the error text, or null when the rules are gone (or were never there).
 */
export function removeInterceptionSync(): string | null {
  const saved = spawnSync('iptables-save', ['-t', 'nat'], { encoding: 'utf8', timeout: TIMEOUT_MS });
  if (saved.status !== 0) return `iptables-save failed: ${(saved.stderr ?? saved.error?.message ?? '').trim()}`;
  const text = removalText(saved.stdout);
  if (text === null) return null;
  const r = spawnSync('iptables-restore', ['--noflush', '-w', '5'], { input: text, encoding: 'utf8', timeout: TIMEOUT_MS });
  return r.status === 0 ? null : `iptables-restore failed: ${(r.stderr ?? r.error?.message ?? '').trim()}`;
}
