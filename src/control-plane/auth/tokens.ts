// Access tokens for the control plane, derived from one signing key kept in the store (so every replica accepts the
// same tokens): the admin token, and join tokens that let a proxy register endpoints for one service only. A join
// token may expire (--ttl) and may be single-use (remembered as used in the store, so every replica refuses it again).

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { splitPinnedToken } from '../../api/v1alpha1/join-token.js';
import type { Store } from '../store/store.js';
import { StoreError } from '../store/store.js';

/** Internal kinds the API never lists or accepts. */
export const SECRET_KIND = 'ControlSecret';
/** A single-use join token that was spent (name: the token's id). */
export const USED_TOKEN_KIND = 'UsedJoinToken';
const SECRET_NS = 'mycel-system';
const SECRET_NAME = 'signing-key';

/** `viewer` is a dashboard session: it may read everything and change nothing. */
export type Principal =
  | { role: 'admin' }
  | { role: 'viewer' }
  | {
      role: 'proxy';
      namespace: string;
      service: string;
      /** How the proxy proved itself: a join token, or its current mesh certificate. */
      via?: 'token' | 'certificate';
      /** A single-use token's id, spent by the first certificate issued for it. */
      singleUseId?: string;
      /** When a token with a TTL expires (Unix ms): its spent record is kept until then, no longer. */
      expiresAt?: number;
    };

export interface JoinTokenOptions {
  /** Seconds until the token expires; absent: it never does. */
  ttlSeconds?: number;
  /** The token obtains one certificate only. */
  singleUse?: boolean;
  now?: number;
}

/** A refused token and why (for the 401 problem). */
export interface TokenRefusal {
  reason: string;
}

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

  /**
   * A join token for the sidecars of one service. Without options it is the long-lived, reusable token of that
   * service; with a TTL or single use it carries its expiry and a random id under the same signature.
   */
  joinToken(namespace: string, service: string, o: JoinTokenOptions = {}): string {
    if (o.ttlSeconds === undefined && o.singleUse !== true) return `mycel-join.${namespace}.${service}.${this.sign(`join/${namespace}/${service}`)}`;
    const expires = o.ttlSeconds === undefined ? 0 : Math.floor((o.now ?? Date.now()) / 1000) + o.ttlSeconds;
    const use = o.singleUse === true ? 'once' : 'multi';
    const id = randomBytes(12).toString('base64url').replace(/[-_]/g, 'x');
    const body = `${namespace}.${service}.${expires}.${use}.${id}`;
    return `mycel-join.${body}.${this.sign(`join/${body}`)}`;
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
  verify(token: string, now = Date.now()): Principal | undefined {
    const r = this.check(token, now);
    return 'reason' in r ? undefined : r;
  }

  /** Who a bearer token stands for, or why it is refused (bad signature, expired). Spent single-use ids are the caller's to check. */
  check(text: string, now = Date.now()): Principal | TokenRefusal {
    // The root fingerprint a printed join token carries is for the sidecar; the signature covers the token alone.
    const { token } = splitPinnedToken(text);
    const parts = token.split('.');
    if (parts[0] === 'mycel-admin' && parts.length === 2) {
      return equal(parts[1] as string, this.sign('admin')) ? { role: 'admin' } : { reason: 'the token\'s signature is not valid' };
    }
    if (parts[0] === 'mycel-join' && parts.length === 4) {
      const [, namespace, service, mac] = parts as [string, string, string, string];
      return equal(mac, this.sign(`join/${namespace}/${service}`)) ? { role: 'proxy', namespace, service, via: 'token' } : { reason: 'the token\'s signature is not valid' };
    }
    if (parts[0] === 'mycel-join' && parts.length === 7) {
      const [, namespace, service, expires, use, id, mac] = parts as [string, string, string, string, string, string, string];
      if (!equal(mac, this.sign(`join/${parts.slice(1, 6).join('.')}`))) return { reason: 'the token\'s signature is not valid' };
      const exp = Number(expires);
      if (exp !== 0 && exp * 1000 <= now) return { reason: `the join token expired at ${new Date(exp * 1000).toISOString()}; create a new one (mycel token create --service ${service})` };
      return { role: 'proxy', namespace, service, via: 'token', ...(use === 'once' ? { singleUseId: id } : {}), ...(exp !== 0 ? { expiresAt: exp * 1000 } : {}) };
    }
    return { reason: 'not a Mycel token' };
  }
}

/** Whether a single-use token was spent already (by any replica). */
export function tokenSpent(store: Store, id: string): boolean {
  return store.get(USED_TOKEN_KIND, SECRET_NS, id) !== undefined;
}

/** A single-use token without --ttl still expires, so that its spent record can be dropped some day. */
export const SINGLE_USE_DEFAULT_TTL_SECONDS = 86_400;
/** Spent records outlive their token's expiry by this much, for replicas whose clocks run behind. */
const SPENT_RECORD_GRACE_MS = 10 * 60_000;

/**
 * Marks a single-use token as spent; false when another request spent it first (the store's compare-and-set decides).
 * `expiresAt` (the token's own expiry) tells the sweep when the record may go.
 */
export async function spendToken(store: Store, id: string, expiresAt?: number): Promise<boolean> {
  try {
    const value = { spentAt: new Date().toISOString(), ...(expiresAt !== undefined ? { expiresAt } : {}) };
    await store.commit([{ op: 'put', kind: USED_TOKEN_KIND, namespace: SECRET_NS, name: id, value }], [{ kind: USED_TOKEN_KIND, namespace: SECRET_NS, name: id, revision: 0 }]);
    return true;
  } catch (err) {
    if (err instanceof StoreError && err.code === 'conflict') return false;
    throw err;
  }
}

/**
 * Drops the spent records of tokens that have expired (they are refused as expired now, so the record has done its
 * job). Records of tokens without an expiry (made before single-use tokens got a default TTL) stay. Any replica may
 * sweep; a record another replica removed first is simply gone. Returns how many this call removed.
 */
export async function sweepSpentTokens(store: Store, now = Date.now()): Promise<number> {
  let removed = 0;
  for (const o of store.list(USED_TOKEN_KIND)) {
    const exp = (o.value as { expiresAt?: unknown }).expiresAt;
    if (typeof exp !== 'number' || exp + SPENT_RECORD_GRACE_MS > now) continue;
    try {
      await store.commit([{ op: 'delete', kind: USED_TOKEN_KIND, namespace: SECRET_NS, name: o.name }], [{ kind: USED_TOKEN_KIND, namespace: SECRET_NS, name: o.name, revision: o.revision }]);
      removed++;
    } catch (err) {
      if (!(err instanceof StoreError && err.code === 'conflict')) throw err;
    }
  }
  return removed;
}

function equal(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
