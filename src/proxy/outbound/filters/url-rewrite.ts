// URLRewrite and the path part of RequestRedirect: ReplaceFullPath, or ReplacePrefixMatch with the Gateway API's
// element-wise prefix semantics. The query string is kept as the client sent it.

import type { PathRewrite } from '../../config/route-table.js';
import type { HttpExchange } from '../../stack/exchange.js';

/**
 * The rewritten request target. ReplacePrefixMatch swaps the matched prefix (compiled without trailing "/") for the
 * replacement (also without one): "/foo/bar" with prefix "/foo" and "/xyz" gives "/xyz/bar", "/foo/" with "" gives "/".
 */
export function rewritePath(target: string, rw: PathRewrite): string {
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  const query = q === -1 ? '' : target.slice(q);
  let out: string;
  if (rw.full !== null) out = rw.full;
  else {
    out = (rw.prefix as string) + path.slice(rw.matched.length);
    if (out.length === 0 || out.charCodeAt(0) !== 47 /* / */) out = '/' + out;
  }
  return out + query;
}

/** Applies a URLRewrite: a new Host (:authority) and/or path for the backend; the client is not told. */
export function applyRewrite(ex: HttpExchange, hostname: string | null, path: PathRewrite | null): void {
  if (hostname !== null) ex.authority = hostname;
  if (path !== null) ex.path = rewritePath(ex.path, path);
}
