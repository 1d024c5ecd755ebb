// Writing key and certificate files safely: directories made with a given mode, files created with their final mode
// (a key is never readable by others, even for a moment), fsynced, and replaced atomically.

import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * mkdir -p that fails instead of spinning: Node's `mkdir(..., { recursive: true })` loops forever when a parent
 * exists but its child still gives ENOENT (any path under /proc), so each level is created and retried once.
 */
export async function makeDirectory(path: string, mode: number): Promise<void> {
  try {
    await mkdir(path, { mode });
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      if ((await stat(path)).isDirectory()) return;
      throw Object.assign(new Error(`${path} exists and is not a directory`), { code: 'ENOTDIR' });
    }
    const parent = dirname(path);
    if (code !== 'ENOENT' || parent === path) throw err;
  }
  await makeDirectory(dirname(path), mode);
  try {
    await mkdir(path, { mode });
  } catch (err) {
    // Another process may have made it between the two attempts.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || !(await stat(path)).isDirectory()) throw err;
  }
}

/**
 * Creates `path` only if it does not exist (O_EXCL, which also refuses a planted symlink) with `mode` from the
 * first byte on; a private key gets exactly 0600 whatever the umask.
 */
export async function writeNew(path: string, data: string, mode: number): Promise<void> {
  const handle = await open(path, 'wx', mode);
  try {
    if (mode === 0o600) await handle.chmod(0o600);
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Replaces `path` atomically: readers see the old file or the new one, and a new key never inherits an old file's mode. */
export async function replaceFile(path: string, data: string, mode: number): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeNew(tmp, data, mode);
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}
