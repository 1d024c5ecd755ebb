// RequestRedirect: answers with a 3xx and a Location built as the Gateway API says (scheme, host, port, path), without
// sending the request anywhere.

import type { RedirectSpec } from '../../config/route-table.js';
import { hostOf } from '../../config/route-match.js';
import type { HttpExchange } from '../../stack/exchange.js';
import { rewritePath } from './url-rewrite.js';

/**
 * The Location of a redirect. Port: the filter's; else the well-known port of the filter's scheme; else the port the
 * request was addressed to (a mesh's "listener port"). A port that is the scheme's default is left out. The scheme
 * defaults to http: apps speak plain HTTP to their sidecar.
 */
export function redirectLocation(r: RedirectSpec, authority: string, target: string, requestPort: number): string {
  const scheme = r.scheme ?? 'http';
  const host = r.hostname ?? hostOf(authority);
  const port = r.port ?? (r.scheme !== null ? (r.scheme === 'https' ? 443 : 80) : requestPort);
  const portPart = port === (scheme === 'https' ? 443 : 80) ? '' : `:${port}`;
  const path = r.path !== null ? rewritePath(target, r.path) : target;
  return `${scheme}://${host}${portPart}${path}`;
}

export function respondRedirect(ex: HttpExchange, r: RedirectSpec): void {
  const location = redirectLocation(r, ex.authority, ex.path, ex.port?.port ?? 80);
  ex.respondLocal(r.statusCode, ['location', location, 'content-length', '0']);
}
