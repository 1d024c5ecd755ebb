// Request-path normalisation for authorization: one canonical form that is both the path a policy checks and the path
// the app receives, so that `/a/../admin`, `%2e%2e`, `//` and friends cannot say one thing to the mesh and another to
// the app. What has no single safe meaning (encoded "/" or "\", backslash, ";" parameters, fragments) is refused.

/** Why a request target was refused; the caller answers 400. */
export interface PathProblem {
  readonly problem: string;
}

const NOT_ORIGIN_FORM: PathProblem = { problem: 'the request target is not a path starting with "/"' };
const BAD_BYTE: PathProblem = { problem: 'the request target holds a control character, a space or a non-ASCII byte' };
const BACKSLASH: PathProblem = { problem: 'the path holds a backslash, which servers disagree on (some read it as "/")' };
const FRAGMENT: PathProblem = { problem: 'the request target holds a fragment ("#"), which clients must not send' };
const PARAMS: PathProblem = { problem: 'the path holds ";" (path parameters), which servers disagree on (some drop what follows)' };
const BAD_ESCAPE: PathProblem = { problem: 'the path holds a "%" not followed by two hex digits' };
const ENCODED_SLASH: PathProblem = { problem: 'the path holds an encoded "/" or "\\" (%2F, %5C), which servers disagree on' };

const HEX = '0123456789ABCDEF';

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** RFC 3986 unreserved characters: an escape of one of these means the same as the character itself. */
function isUnreserved(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 95 || c === 126;
}

/**
 * The canonical form of an origin-form request target (path and query), or why it is refused. The path part: escapes
 * of unreserved characters decoded, other escapes in upper-case hex, "." and ".." segments resolved (never above the
 * root), runs of "/" merged into one; a trailing "/" is kept. The query is kept as it is. `*` (OPTIONS *) passes.
 * A target that is already canonical is returned as the same string, without allocation.
 */
export function normalizeRequestPath(target: string): string | PathProblem {
  if (target === '*') return target;
  if (target.charCodeAt(0) !== 47 /* / */) return NOT_ORIGIN_FORM;
  const n = target.length;
  let end = n; // end of the path part
  let simple = true;
  let prev = 0;
  for (let i = 0; i < n; i++) {
    const c = target.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return BAD_BYTE;
    if (c === 35 /* # */) return FRAGMENT;
    if (i >= end) continue; // the query: only checked for bytes
    if (c === 63 /* ? */) {
      end = i;
      continue;
    }
    if (c === 92 /* \ */) return BACKSLASH;
    if (c === 59 /* ; */) return PARAMS;
    if (c === 37 /* % */) simple = false;
    // "//", "/." start the slow path (it decides whether the dot makes a dot segment).
    else if (prev === 47 && (c === 47 || c === 46)) simple = false;
    prev = c;
  }
  if (simple) return target;
  return rebuild(target, end);
}

function rebuild(target: string, end: number): string | PathProblem {
  const segments: string[] = [];
  let seg = '';
  // Whether the last segment was empty, "." or "..": then the result ends with "/" (RFC 3986 section 5.2.4).
  let endsInDirectory = false;
  for (let i = 1; i <= end; ) {
    const c = i < end ? target.charCodeAt(i) : 47; // the end closes the last segment like a "/"
    if (c === 47) {
      if (seg === '..') segments.pop();
      else if (seg !== '.' && seg !== '') segments.push(seg);
      endsInDirectory = seg === '' || seg === '.' || seg === '..';
      seg = '';
      i++;
    } else if (c === 37) {
      const h = i + 2 < end ? hexValue(target.charCodeAt(i + 1)) : -1;
      const l = h === -1 ? -1 : hexValue(target.charCodeAt(i + 2));
      if (l === -1) return BAD_ESCAPE;
      const b = h * 16 + l;
      if (b === 47 || b === 92) return ENCODED_SLASH;
      seg += isUnreserved(b) ? String.fromCharCode(b) : '%' + HEX[h] + HEX[l];
      i += 3;
    } else {
      seg += target[i];
      i++;
    }
  }
  let out = '/' + segments.join('/');
  if (endsInDirectory && segments.length > 0) out += '/';
  return end < target.length ? out + target.slice(end) : out;
}

export function isPathProblem(v: string | PathProblem): v is PathProblem {
  return typeof v !== 'string';
}
