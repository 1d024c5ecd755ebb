// One owner per store directory: a lock file naming the owner's PID (and start time, to see through PID reuse),
// refused while that process lives, taken over once it is gone.
import { randomBytes } from 'node:crypto';
import { promises as fsp, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { syncDir } from './durable-io.js';
import { StoreError } from './store.js';

interface Owner {
  readonly pid: number;
  /** Start time in clock ticks since boot (/proc/PID/stat field 22); undefined where /proc is missing. */
  readonly started: number | undefined;
}

/** Lock paths held by this process: a lock with our own PID that is not in here was left by an earlier life. */
const heldHere = new Set<string>();
const MAX_ATTEMPTS = 3;

export class StoreLock {
  private constructor(
    readonly path: string,
    private readonly content: string,
    /** The PID of the dead owner whose lock this one replaced, for the caller to log. */
    readonly tookOverFrom: number | undefined,
  ) {}

  static async acquire(path: string): Promise<StoreLock> {
    const me: Owner = { pid: process.pid, started: startTime(process.pid) };
    const content = `${me.pid} ${me.started ?? '-'}\n`;
    const nonce = randomBytes(4).toString('hex');
    // Written in full beside the lock, then linked into place: the lock file never exists half-written.
    const tmp = `${path}.${me.pid}.${nonce}`;
    await fsp.writeFile(tmp, content, { flag: 'wx', mode: 0o600 });
    let staleOwner: number | undefined;
    try {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        try {
          await fsp.link(tmp, path);
          heldHere.add(path);
          await syncDir(dirname(path));
          return new StoreLock(path, content, staleOwner);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        const text = await readIfExists(path);
        if (text === undefined) continue;
        const owner = parseOwner(text);
        if (owner !== undefined && isAlive(owner, path)) throw lockedError(path, owner.pid);
        // Move the stale lock aside atomically, then check that what moved is what was judged stale: another
        // process may have taken it over in between, and its lock must go back.
        const aside = `${path}.stale.${me.pid}.${nonce}`;
        try {
          await fsp.rename(path, aside);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw err;
        }
        const moved = await readIfExists(aside);
        if (moved !== text) await fsp.link(aside, path).catch(() => {});
        else staleOwner = owner?.pid;
        await fsp.rm(aside, { force: true });
      }
      throw new StoreError('unavailable', `could not take the lock ${path} in ${MAX_ATTEMPTS} attempts: is another process starting on the same directory?`);
    } finally {
      await fsp.rm(tmp, { force: true });
    }
  }

  async release(): Promise<void> {
    heldHere.delete(this.path);
    // Only remove the lock if it is still ours.
    if ((await readIfExists(this.path)) === this.content) await fsp.rm(this.path, { force: true });
  }
}

function lockedError(path: string, pid: number): StoreError {
  return new StoreError(
    'unavailable',
    `the store directory ${dirname(dirname(path))} is in use by process ${pid} (lock file ${path}); ` +
      'stop that process first, or give this one another directory',
  );
}

function isAlive(owner: Owner, path: string): boolean {
  if (owner.pid === process.pid) return heldHere.has(path);
  try {
    process.kill(owner.pid, 0);
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const started = startTime(owner.pid);
  return owner.started === undefined || started === undefined || started === owner.started;
}

function parseOwner(text: string): Owner | undefined {
  const m = /^(\d+) (\d+|-)\n$/.exec(text);
  if (!m) return undefined;
  return { pid: Number(m[1]), started: m[2] === '-' ? undefined : Number(m[2]) };
}

function startTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const v = Number(fields[19]);
    return Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
