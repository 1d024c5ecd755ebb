// File-system steps the file store relies on for durability: full writes, directory fsync, atomic replace, and
// turning an I/O error into a StoreError that says what to do.
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { StoreError } from './store.js';

/** Writes all of `buf` at `position`, looping over short writes. */
export async function writeFully(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    // A zero-byte write without an error would loop forever; the kernel reports ENOSPC instead, but be sure.
    if (bytesWritten <= 0) throw Object.assign(new Error(`short write at byte ${position + done}`), { code: 'EIO' });
    done += bytesWritten;
  }
}

/** Makes a directory's entries (created, renamed, removed files) durable. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Replaces `path` with `data` so that a crash leaves the old or the new content, never a mix. */
export async function replaceFileDurably(path: string, data: Buffer): Promise<void> {
  const tmp = `${path}.tmp`;
  try {
    const fh = await fsp.open(tmp, 'w', 0o600);
    try {
      await writeFully(fh, data, 0);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, path);
  } catch (err) {
    await fsp.rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
  await syncDir(dirname(path));
}

export function isDiskFull(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** A failed write as the store reports it: `disk-full` for ENOSPC/EDQUOT, `unavailable` for any other I/O error. */
export function writeError(err: unknown, path: string): StoreError {
  const e = err as NodeJS.ErrnoException;
  if (isDiskFull(err)) {
    const what = e.code === 'EDQUOT' ? 'the disk quota' : 'the file system';
    return new StoreError(
      'disk-full',
      `cannot write ${path}: ${what} is full (${e.code}); nothing was written and reads go on. ` +
        'Free space on that file system (or raise the quota), then retry the change',
      { cause: err },
    );
  }
  return new StoreError('unavailable', `cannot write ${path}: ${e.message}; nothing was written`, { cause: err });
}
