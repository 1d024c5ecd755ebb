// CA keys and certificates on the replica's disk: `<stateDir>/ca/`, keys created with mode 0600 from the first byte.
// Keys are read here and handed to the signer only; nothing returns them to the API or a log.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CaMaterial } from '../../security/dev-ca.js';
import { makeDirectory, replaceFile } from '../../security/secret-files.js';

export class CaKeyFiles {
  readonly dir: string;
  constructor(stateDir: string) {
    this.dir = join(stateDir, 'ca');
  }

  private paths(name: string): { cert: string; key: string } {
    return { cert: join(this.dir, `${name}.crt`), key: join(this.dir, `${name}.key`) };
  }

  /** Writes a CA's key (0600) and certificate (0644), key first so that a certificate on disk always has its key. */
  async write(name: string, ca: CaMaterial): Promise<void> {
    await makeDirectory(this.dir, 0o700);
    const p = this.paths(name);
    await replaceFile(p.key, ca.keyPem, 0o600);
    await replaceFile(p.cert, ca.certPem, 0o644);
  }

  async read(name: string): Promise<CaMaterial | undefined> {
    const p = this.paths(name);
    try {
      const [certPem, keyPem] = await Promise.all([readFile(p.cert, 'utf8'), readFile(p.key, 'utf8')]);
      return { certPem, keyPem };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }
}

/** File names: a root by its fingerprint, this replica's intermediate by the root it chains to. */
export const rootFileName = (fingerprint: string): string => `root-${fingerprint.slice(0, 16)}`;
export const intermediateFileName = (rootFingerprint: string): string => `intermediate-${rootFingerprint.slice(0, 16)}`;
