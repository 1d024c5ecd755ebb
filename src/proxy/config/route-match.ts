// Compiled route matches and the Gateway API precedence between them. Every match of every rule of every route on a
// parent port becomes one candidate; candidates are sorted once at compile time, so a request takes the first candidate
// that matches it, with no parsing and (for the common match kinds) no allocation.

import { fullMatchRegex, type GRPCRouteMatch, type HTTPRouteMatch } from '../../api/v1alpha1/routes.js';
import type { HeaderList } from '../stack/http-types.js';

/** The value of a request header (names are lower-case); several fields of one name are joined with ",". */
export function headerValue(headers: HeaderList, name: string): string | null {
  let out: string | null = null;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === name) out = out === null ? (headers[i + 1] as string) : out + ',' + (headers[i + 1] as string);
  }
  return out;
}

/** Exact or whole-value regular expression match of one header or query parameter. */
interface ValueMatcher {
  readonly name: string;
  readonly exact: string | null;
  readonly re: RegExp | null;
}

function valueMatchers(list: readonly { type: string; name: string; value: string }[] | undefined, foldCase: boolean): ValueMatcher[] {
  const out: ValueMatcher[] = [];
  const seen = new Set<string>();
  for (const m of list ?? []) {
    const name = foldCase ? m.name.toLowerCase() : m.name;
    // Gateway API: of several entries for one name, only the first counts.
    if (seen.has(name)) continue;
    seen.add(name);
    out.push(m.type === 'RegularExpression' ? { name, exact: null, re: fullMatchRegex(m.value) ?? null } : { name, exact: m.value, re: null });
  }
  return out;
}

function valueOk(m: ValueMatcher, value: string | null): boolean {
  if (value === null) return false;
  return m.re !== null ? m.re.test(value) : value === m.exact;
}

/** Decodes a query component as browsers encode forms ("+" is a space); a malformed escape is kept as written. */
function decodeQueryPart(s: string): string {
  if (s.indexOf('%') === -1 && s.indexOf('+') === -1) return s;
  const plus = s.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(plus);
  } catch {
    return plus;
  }
}

/** The first value of query parameter `name` in `path` (after `q`, the index of "?"); null when absent. */
export function queryValue(path: string, q: number, name: string): string | null {
  if (q < 0) return null;
  let start = q + 1;
  while (start <= path.length) {
    let end = path.indexOf('&', start);
    if (end === -1) end = path.length;
    const eq = path.indexOf('=', start);
    const nameEnd = eq !== -1 && eq < end ? eq : end;
    if (decodeQueryPart(path.slice(start, nameEnd)) === name) return nameEnd === end ? '' : decodeQueryPart(path.slice(nameEnd + 1, end));
    start = end + 1;
  }
  return null;
}

export const PATH_EXACT = 0;
export const PATH_REGEX = 1;
export const PATH_PREFIX = 2;

/** Host names a route is limited to; empty: any host. */
export class HostMatcher {
  constructor(
    /** The host name, lower-case, or the suffix (".example.com") of a wildcard "*.example.com". */
    private readonly name: string,
    readonly wildcard: boolean,
  ) {}

  /** `host` is lower-case without a port. */
  test(host: string): boolean {
    return this.wildcard ? host.length > this.name.length && host.endsWith(this.name) : host === this.name;
  }

  /** Gateway API precedence: characters of a matching non-wildcard host name, then of a matching host name. */
  get exactChars(): number {
    return this.wildcard ? 0 : this.name.length;
  }

  get chars(): number {
    return this.wildcard ? this.name.length + 1 : this.name.length;
  }
}

export function hostMatcher(hostname: string): HostMatcher {
  return hostname.startsWith('*.') ? new HostMatcher(hostname.slice(1), true) : new HostMatcher(hostname, false);
}

/** The host part of an authority, lower-case, without port or trailing dot. */
export function hostOf(authority: string): string {
  let end = authority.length;
  if (authority.charCodeAt(0) === 91 /* [ */) end = authority.indexOf(']') + 1 || end;
  else {
    const colon = authority.lastIndexOf(':');
    if (colon !== -1) end = colon;
  }
  if (end > 0 && authority.charCodeAt(end - 1) === 46 /* . */) end--;
  const h = end === authority.length ? authority : authority.slice(0, end);
  return h.toLowerCase();
}

/** One HTTPRouteMatch, compiled. */
export class HttpMatch {
  readonly pathKind: number;
  /** Exact: the path; PathPrefix: the prefix without trailing "/" ("" matches every path); regex: its source. */
  readonly pathValue: string;
  private readonly pathRe: RegExp | null;
  readonly method: string | null;
  readonly headers: readonly ValueMatcher[];
  readonly query: readonly ValueMatcher[];

  constructor(m: HTTPRouteMatch) {
    const { type, value } = m.path;
    this.pathKind = type === 'Exact' ? PATH_EXACT : type === 'RegularExpression' ? PATH_REGEX : PATH_PREFIX;
    this.pathValue = type === 'PathPrefix' ? value.replace(/\/+$/, '') : value;
    this.pathRe = type === 'RegularExpression' ? (fullMatchRegex(value) ?? null) : null;
    this.method = m.method ?? null;
    this.headers = valueMatchers(m.headers, true);
    this.query = valueMatchers(m.queryParams, false);
  }

  /** `pathLen`: where the path ends (the index of "?", or the length). */
  test(method: string, path: string, pathLen: number, headers: HeaderList): boolean {
    const v = this.pathValue;
    switch (this.pathKind) {
      case PATH_EXACT:
        if (pathLen !== v.length || !path.startsWith(v)) return false;
        break;
      case PATH_PREFIX:
        // Element-wise: "/v2" matches "/v2" and "/v2/x", not "/v2x".
        if (v.length > 0 && (!path.startsWith(v) || (pathLen !== v.length && path.charCodeAt(v.length) !== 47))) return false;
        break;
      default:
        if (this.pathRe === null || !this.pathRe.test(pathLen === path.length ? path : path.slice(0, pathLen))) return false;
    }
    if (this.method !== null && method !== this.method) return false;
    for (let i = 0; i < this.headers.length; i++) {
      const h = this.headers[i] as ValueMatcher;
      if (!valueOk(h, headerValue(headers, h.name))) return false;
    }
    for (let i = 0; i < this.query.length; i++) {
      const q = this.query[i] as ValueMatcher;
      if (!valueOk(q, queryValue(path, pathLen === path.length ? -1 : pathLen, q.name))) return false;
    }
    return true;
  }
}

/** One GRPCRouteMatch, compiled; the request's service and method come from its path "/package.Service/Method". */
export class GrpcMatch {
  private readonly service: ValueMatcher | null;
  private readonly method: ValueMatcher | null;
  readonly headers: readonly ValueMatcher[];
  readonly serviceChars: number;
  readonly methodChars: number;

  constructor(m: GRPCRouteMatch | null) {
    const mm = m?.method;
    const regex = mm?.type === 'RegularExpression';
    const matcher = (value: string | undefined): ValueMatcher | null => (value ? { name: '', exact: regex ? null : value, re: regex ? (fullMatchRegex(value) ?? null) : null } : null);
    this.service = matcher(mm?.service);
    this.method = matcher(mm?.method);
    this.headers = valueMatchers(m?.headers, true);
    this.serviceChars = mm?.service?.length ?? 0;
    this.methodChars = mm?.method?.length ?? 0;
  }

  /** `slash`: index of the "/" between service and method in `path` (-1 when the path is not a gRPC method path). */
  test(path: string, slash: number, headers: HeaderList): boolean {
    if (this.service !== null || this.method !== null) {
      if (slash <= 1) return false;
      if (this.service !== null && !valueOk(this.service, path.slice(1, slash))) return false;
      if (this.method !== null && !valueOk(this.method, path.slice(slash + 1))) return false;
    }
    for (let i = 0; i < this.headers.length; i++) {
      const h = this.headers[i] as ValueMatcher;
      if (!valueOk(h, headerValue(headers, h.name))) return false;
    }
    return true;
  }
}

/** What orders candidates beyond their match: the route's age and name, then rule and match position. */
export interface RouteOrder {
  /** Position of the route in age order (compareRouteAge), 0 = oldest. */
  readonly routeRank: number;
  readonly ruleIndex: number;
  readonly matchIndex: number;
}

export interface HttpCandidate<R> extends RouteOrder {
  readonly host: HostMatcher | null;
  readonly match: HttpMatch;
  readonly rule: R;
}

export interface GrpcCandidate<R> extends RouteOrder {
  readonly host: HostMatcher | null;
  readonly match: GrpcMatch;
  readonly rule: R;
}

function byOrder(a: RouteOrder, b: RouteOrder): number {
  return a.routeRank - b.routeRank || a.ruleIndex - b.ruleIndex || a.matchIndex - b.matchIndex;
}

function byHost(a: { host: HostMatcher | null }, b: { host: HostMatcher | null }): number {
  return (b.host?.exactChars ?? 0) - (a.host?.exactChars ?? 0) || (b.host?.chars ?? 0) - (a.host?.chars ?? 0);
}

/**
 * HTTPRoute precedence (Gateway API): host name specificity; then an Exact path; then a RegularExpression path (the
 * spec leaves its rank to implementations: Mycel puts it above every prefix, so a catch-all rule never hides it,
 * longer expressions first); then the longest PathPrefix; a method match; most header matches; most query matches;
 * then the oldest route, then namespace/name, then the first rule and match in the route.
 */
export function compareHttp<R>(a: HttpCandidate<R>, b: HttpCandidate<R>): number {
  const ma = a.match;
  const mb = b.match;
  return (
    byHost(a, b) ||
    ma.pathKind - mb.pathKind ||
    mb.pathValue.length - ma.pathValue.length ||
    (mb.method !== null ? 1 : 0) - (ma.method !== null ? 1 : 0) ||
    mb.headers.length - ma.headers.length ||
    mb.query.length - ma.query.length ||
    byOrder(a, b)
  );
}

/** GRPCRoute precedence: host name specificity, characters of the service match, of the method match, header matches. */
export function compareGrpc<R>(a: GrpcCandidate<R>, b: GrpcCandidate<R>): number {
  const ma = a.match;
  const mb = b.match;
  return byHost(a, b) || mb.serviceChars - ma.serviceChars || mb.methodChars - ma.methodChars || mb.headers.length - ma.headers.length || byOrder(a, b);
}

/** Below this many candidates a plain scan is as fast as the index. */
const INDEX_MIN_CANDIDATES = 16;

/**
 * The first path segment every path this match accepts starts with, or null when it accepts several (a regex, the
 * "/" prefix). Prefixes match whole segments, so "/api" and "/api/v2" both pin the first segment to "api".
 */
function firstSegmentKey(m: HttpMatch): string | null {
  if (m.pathKind === PATH_REGEX) return null;
  const v = m.pathValue;
  if (m.pathKind === PATH_PREFIX && v.length === 0) return null;
  if (v.charCodeAt(0) !== 47) return null;
  const end = v.indexOf('/', 1);
  return end === -1 ? v.slice(1) : v.slice(1, end);
}

/** The candidates of one parent port, in precedence order. */
export class RouteCandidates<R> {
  /** Whether any candidate looks at the host name (else the request's host is never computed). */
  private readonly needsHost: boolean;

  /**
   * Large tables only: the candidates a path can match, by its first segment ("/api/x" -> "api"), each list still in
   * precedence order; candidates that can match any first segment (regexes, the "/" prefix) are in every list.
   */
  private readonly bySegment: Map<string, HttpCandidate<R>[]> | null = null;
  private readonly anySegment: readonly HttpCandidate<R>[] = [];

  constructor(
    readonly http: readonly HttpCandidate<R>[],
    readonly grpc: readonly GrpcCandidate<R>[],
  ) {
    this.needsHost = http.some((c) => c.host !== null) || grpc.some((c) => c.host !== null);
    if (http.length >= INDEX_MIN_CANDIDATES) {
      const keys = http.map((c) => firstSegmentKey(c.match));
      const bySegment = new Map<string, HttpCandidate<R>[]>();
      for (const k of keys) if (k !== null && !bySegment.has(k)) bySegment.set(k, []);
      const any: HttpCandidate<R>[] = [];
      // Walking in precedence order keeps every list in precedence order.
      http.forEach((c, i) => {
        const k = keys[i];
        if (k === null || k === undefined) {
          any.push(c);
          for (const list of bySegment.values()) list.push(c);
        } else {
          bySegment.get(k)!.push(c);
        }
      });
      this.bySegment = bySegment;
      this.anySegment = any;
    }
  }

  /** The first HTTP candidate matching the request, or null. */
  matchHttp(method: string, authority: string, path: string, headers: HeaderList): HttpCandidate<R> | null {
    const q = path.indexOf('?');
    const pathLen = q === -1 ? path.length : q;
    const host = this.needsHost ? hostOf(authority) : '';
    const list = this.bySegment === null ? this.http : this.candidatesFor(path, pathLen);
    for (let i = 0; i < list.length; i++) {
      const c = list[i] as HttpCandidate<R>;
      if (c.host !== null && !c.host.test(host)) continue;
      if (c.match.test(method, path, pathLen, headers)) return c;
    }
    return null;
  }

  private candidatesFor(path: string, pathLen: number): readonly HttpCandidate<R>[] {
    if (path.charCodeAt(0) !== 47) return this.http; // not origin-form: no index, the full scan decides
    let end = path.indexOf('/', 1);
    if (end === -1 || end > pathLen) end = pathLen;
    return this.bySegment!.get(path.slice(1, end)) ?? this.anySegment;
  }

  /** The first gRPC candidate matching the request, or null. */
  matchGrpc(authority: string, path: string, headers: HeaderList): GrpcCandidate<R> | null {
    const slash = path.charCodeAt(0) === 47 ? path.indexOf('/', 1) : -1;
    const host = this.needsHost ? hostOf(authority) : '';
    const list = this.grpc;
    for (let i = 0; i < list.length; i++) {
      const c = list[i] as GrpcCandidate<R>;
      if (c.host !== null && !c.host.test(host)) continue;
      if (c.match.test(path, slash, headers)) return c;
    }
    return null;
  }
}
