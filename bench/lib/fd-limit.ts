// The open-file limit for benchmarks that hold thousands of sockets: read it from /proc/self/limits and raise the soft
// limit up to the hard one (prlimit on this process; children inherit it), since Node has no setrlimit of its own.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface FileLimit {
  soft: number;
  hard: number;
}

/** Parses the "Max open files" line of /proc/<pid>/limits ("unlimited" becomes Infinity). */
export function parseOpenFileLimit(text: string): FileLimit | null {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  if (m === null) return null;
  const num = (s: string) => (s === 'unlimited' ? Infinity : Number(s));
  const soft = num(m[1] as string);
  const hard = num(m[2] as string);
  return Number.isNaN(soft) || Number.isNaN(hard) ? null : { soft, hard };
}

export function openFileLimit(): FileLimit | null {
  try {
    return parseOpenFileLimit(readFileSync('/proc/self/limits', 'utf8'));
  } catch {
    return null;
  }
}

/**
 * Makes sure this process (and the children it starts afterwards) may open `needed` files: raises the soft limit
 * towards the hard one when needed. Returns the limit now in force; it may still be below `needed`.
 */
export function ensureOpenFiles(needed: number): FileLimit | null {
  const now = openFileLimit();
  if (now === null || now.soft >= needed || now.soft >= now.hard) return now;
  const target = now.hard === Infinity ? needed : Math.min(now.hard, Math.max(needed, now.soft));
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${target}:${now.hard === Infinity ? 'unlimited' : now.hard}`], { stdio: 'ignore' });
  } catch {
    // No prlimit (util-linux) or not permitted: the caller sees the unchanged limit.
  }
  return openFileLimit();
}
