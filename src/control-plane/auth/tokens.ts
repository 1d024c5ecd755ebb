// Access tokens for the control plane, derived from one signing key kept in the store (so every replica accepts the
// same tokens): the admin token, and join tokens that let a proxy register endpoints for one service only.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Store } from '../store/store.js';
import { StoreError } from '../store/store.js';

/** Internal kinds the API never lists or accepts. */
export const SECRET_KIND = 'ControlSecret';
const SECRET_NS = 'mycel-system';
const SECRET_NAME = 'signing-key';

/** `viewer` is a dashboard session: it may read everything and change nothing. */
export type Principal = { role: 'admin' } | { role: 'viewer' } | { role: 'proxy'; namespace: string; service: string };

export class TokenAuthority {
  private constructor(private readonly key: Buffer) {}

  /** Reads the signing key from the store, creating it on the first start of the first replica. */
  static async fromStore(store: Store): Promise<TokenAuthority> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const existing = store.get(SECRET_KIND, SECRET_NS, SECRET_NAME);
      if (existing !== undefined) return new TokenAuthority(Buffer.from((existing.value as { key: string }).key, 'base64'));
      const key = randomBytes(32);
      try {
        // Two replicas starting at once: only one key wins; the other reads it on the next turn.
        await store.commit([{ op: 'put', kind: SECRET_KIND, namespace: SECRET_NS, name: SECRET_NAME, value: { key: key.toString('base64') } }], [{ kind: SECRET_KIND, namespace: SECRET_NS, name: SECRET_NAME, revision: 0 }]);
        return new TokenAuthority(key);
      } catch (err) {
        if (!(err instanceof StoreError && err.code === 'conflict')) throw err;
      }
    }
    throw new Error('could not read or create the control-plane signing key');
  }

  private sign(subject: string): string {
    return createHmac('sha256', this.key).update(subject).digest('base64url');
  }

  adminToken(): string {
    return `mycel-admin.${this.sign('admin')}`;
  }

  /** A join token for the sidecars of one service. */
  joinToken(namespace: string, service: string): string {
    return `mycel-join.${namespace}.${service}.${this.sign(`join/${namespace}/${service}`)}`;
  }

  /** A dashboard session for the browser's HttpOnly cookie: signed, so every replica accepts it until `expiresAt`. */
  sessionToken(expiresAt: number, nonce: string): string {
    return `mycel-session.${expiresAt}.${nonce}.${this.sign(`session/${expiresAt}/${nonce}`)}`;
  }

  /** Whether a dashboard session token is genuine and not yet expired at `now`. */
  verifySession(token: string, now: number): boolean {
    const parts = token.split('.');
    if (parts.length !== 4 || parts[0] !== 'mycel-session') return false;
    const [, expires, nonce, mac] = parts as [string, string, string, string];
    const expiresAt = Number(expires);
    return Number.isSafeInteger(expiresAt) && expiresAt > now && equal(mac, this.sign(`session/${expires}/${nonce}`));
  }

  /** Who a bearer token stands for, or undefined for an invalid one. */
  verify(token: string): Principal | undefined {
    const parts = token.split('.');
    if (parts[0] === 'mycel-admin' && parts.length === 2) {
      return equal(parts[1] as string, this.sign('admin')) ? { role: 'admin' } : undefined;
    }
    if (parts[0] === 'mycel-join' && parts.length === 4) {
      const [, namespace, service, mac] = parts as [string, string, string, string];
      return equal(mac, this.sign(`join/${namespace}/${service}`)) ? { role: 'proxy', namespace, service } : undefined;
    }
    return undefined;
  }
}

function equal(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
