// The session-affinity key a RingHash / Maglev balancer hashes, taken from the request: a header, a cookie (made up,
// and set on the response, when the policy gives the cookie a ttl and the client has none), or the client address.

import { randomBytes } from 'node:crypto';
import type { HashKeySpec } from '../config/traffic-policy.js';
import { fieldValue, type HttpExchange } from '../stack/exchange.js';
import type { HeaderList } from '../stack/http-types.js';

/** The key for `ex`, or undefined when the request has none (the balancer then takes endpoints in turn). */
export function requestHashKey(ex: HttpExchange, spec: HashKeySpec): string | undefined {
  if (spec.header !== undefined) return fieldValue(ex.headers, spec.header) ?? undefined;
  if (spec.cookie !== undefined) {
    const v = cookieValue(ex.headers, spec.cookie.name);
    if (v !== null) return v;
    if (spec.cookie.ttlMs === undefined) return undefined;
    // Every attempt of this request (retries included) uses the same made-up value, and the response carries it.
    return (ex.affinityCookie ??= randomBytes(12).toString('base64url'));
  }
  const forwarded = fieldValue(ex.headers, 'x-forwarded-for');
  if (forwarded !== null) {
    const comma = forwarded.indexOf(',');
    return (comma === -1 ? forwarded : forwarded.slice(0, comma)).trim();
  }
  return ex.clientAddress ?? undefined;
}

/** The value of cookie `name` in the request's Cookie fields (HTTP/2 may split them into several), or null. */
export function cookieValue(headers: HeaderList, name: string): string | null {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== 'cookie') continue;
    const text = headers[i + 1] as string;
    let at = 0;
    while (at < text.length) {
      let end = text.indexOf(';', at);
      if (end === -1) end = text.length;
      const eq = text.indexOf('=', at);
      if (eq !== -1 && eq < end && text.slice(at, eq).trim() === name) return text.slice(eq + 1, end).trim();
      at = end + 1;
    }
  }
  return null;
}

/** The Set-Cookie value that pins a client to the endpoint its made-up key maps to. */
export function affinitySetCookie(cookie: NonNullable<HashKeySpec['cookie']>, value: string): string {
  const maxAge = Math.max(1, Math.ceil((cookie.ttlMs ?? 0) / 1000));
  return `${cookie.name}=${value}; Max-Age=${maxAge}; Path=${cookie.path ?? '/'}; HttpOnly`;
}
