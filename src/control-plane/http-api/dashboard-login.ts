// How a browser signs in to the dashboard: the CLI (holding the admin token) asks for a one-time login code, the
// browser opens /login?code=..., and the control plane swaps the code for a read-only session in an HttpOnly cookie.

import { randomBytes } from 'node:crypto';
import type { TokenAuthority } from '../auth/tokens.js';

/** How long a login code may wait for its browser; it works once. */
export const LOGIN_CODE_TTL_MS = 5 * 60_000;
/** How long a dashboard session lasts before `mycel dashboard` has to be run again. */
export const SESSION_TTL_MS = 12 * 3600_000;
/** Codes outstanding at once: enough for any person, bounded against a script that asks in a loop. */
const MAX_CODES = 64;

/** One-time login codes, kept in this replica's memory (the URL the CLI prints points at the replica that issued it). */
export class LoginCodes {
  private readonly codes = new Map<string, number>();

  issue(now: number): { code: string; expiresAt: number } {
    for (const [c, expiresAt] of this.codes) if (expiresAt <= now) this.codes.delete(c);
    // Oldest first out when full: a map iterates in insertion order.
    while (this.codes.size >= MAX_CODES) this.codes.delete(this.codes.keys().next().value as string);
    const code = randomBytes(18).toString('base64url');
    const expiresAt = now + LOGIN_CODE_TTL_MS;
    this.codes.set(code, expiresAt);
    return { code, expiresAt };
  }

  /** True once per issued code, before it expires. */
  redeem(code: string, now: number): boolean {
    const expiresAt = this.codes.get(code);
    if (expiresAt === undefined) return false;
    this.codes.delete(code);
    return expiresAt > now;
  }
}

/**
 * The cookie's name carries the port: browsers send a host's cookies to every port on it, and two meshes on one
 * machine (7400 and 7401) must not sign each other out.
 */
export function sessionCookieName(hostHeader: string | undefined): string {
  const port = /:(\d+)$/.exec(hostHeader ?? '')?.[1] ?? 'default';
  return `mycel-session-${port}`;
}

/** The Set-Cookie value for a new session (Secure when the dashboard is served over TLS). */
export function sessionCookie(tokens: TokenAuthority, hostHeader: string | undefined, now: number, secure: boolean): string {
  const expiresAt = now + SESSION_TTL_MS;
  const value = tokens.sessionToken(expiresAt, randomBytes(12).toString('base64url'));
  return `${sessionCookieName(hostHeader)}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_TTL_MS / 1000}${secure ? '; Secure' : ''}`;
}

export function clearedSessionCookie(hostHeader: string | undefined): string {
  return `${sessionCookieName(hostHeader)}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;
}

/** The session token from a Cookie header, if there is one for this port. */
export function sessionFromCookies(cookieHeader: string | undefined, hostHeader: string | undefined): string | undefined {
  if (cookieHeader === undefined) return undefined;
  const name = sessionCookieName(hostHeader) + '=';
  for (const part of cookieHeader.split(';')) {
    const p = part.trim();
    if (p.startsWith(name)) return p.slice(name.length);
  }
  return undefined;
}
