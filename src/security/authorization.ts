// Authorization: compiles the AuthorizationPolicies of one service into matchers once per config change, and decides
// each request (or TCP connection) with them: DENY policies first, then ALLOW; no policy allows; fail closed.
// Deciding allocates nothing: identities, methods and paths are compared as strings against precompiled patterns.

import type { AuthorizationPolicy } from '../api/v1alpha1/policies.js';

/** exact | prefix ("x*") | suffix ("*x") | any ("*"). */
const EXACT = 0;
const PREFIX = 1;
const SUFFIX = 2;
const ANY = 3;

interface Pattern {
  readonly kind: number;
  readonly text: string;
}

/** A request as authorization sees it; for a TCP connection `method` and `path` are null. */
export interface AuthzRequest {
  /** The verified SPIFFE ID of the caller; null for plain text (PERMISSIVE). */
  readonly principal: string | null;
  readonly method: string | null;
  /** The normalised path (see request-path.ts), the query after `pathEnd`. */
  readonly path: string | null;
  readonly pathEnd: number;
  /** The service port the request arrived for. */
  readonly port: number;
  /** Header fields as [name, value, ...] with lower-case names; empty for TCP. */
  readonly headers: readonly string[];
}

function pattern(text: string): Pattern {
  if (text === '*') return { kind: ANY, text: '' };
  if (text.endsWith('*')) return { kind: PREFIX, text: text.slice(0, -1) };
  if (text.startsWith('*')) return { kind: SUFFIX, text: text.slice(1) };
  return { kind: EXACT, text };
}

/** Whether `s[0, end)` matches; with `lower`, the subject's ASCII letters are compared in lower case (the pattern already is). */
function matches(p: Pattern, s: string, end: number, lower: boolean): boolean {
  const t = p.text;
  switch (p.kind) {
    case ANY:
      return true;
    case EXACT:
      return end === t.length && same(s, 0, t, lower);
    case PREFIX:
      return end >= t.length && same(s, 0, t, lower);
    default:
      return end >= t.length && same(s, end - t.length, t, lower);
  }
}

function same(s: string, at: number, t: string, lower: boolean): boolean {
  if (!lower) return s.startsWith(t, at);
  for (let i = 0; i < t.length; i++) {
    let c = s.charCodeAt(at + i);
    if (c >= 65 && c <= 90) c += 32;
    if (c !== t.charCodeAt(i)) return false;
  }
  return true;
}

function anyMatch(ps: readonly Pattern[], s: string, end: number, lower = false): boolean {
  for (let i = 0; i < ps.length; i++) if (matches(ps[i] as Pattern, s, end, lower)) return true;
  return false;
}

class Source {
  constructor(
    readonly principals: readonly Pattern[] | null,
    readonly notPrincipals: readonly Pattern[] | null,
    /** Namespaces and services become prefixes and exact IDs of the mesh's trust domain. */
    readonly namespaces: readonly Pattern[] | null,
    readonly services: readonly Pattern[] | null,
  ) {}

  match(principal: string | null): boolean {
    if (principal === null) return this.principals === null && this.namespaces === null && this.services === null;
    const n = principal.length;
    if (this.principals !== null && !anyMatch(this.principals, principal, n)) return false;
    if (this.notPrincipals !== null && anyMatch(this.notPrincipals, principal, n)) return false;
    if (this.namespaces !== null && !anyMatch(this.namespaces, principal, n)) return false;
    if (this.services !== null && !anyMatch(this.services, principal, n)) return false;
    return true;
  }
}

class Operation {
  constructor(
    readonly methods: readonly string[] | null,
    readonly notMethods: readonly string[] | null,
    readonly paths: readonly Pattern[] | null,
    readonly notPaths: readonly Pattern[] | null,
    readonly ports: readonly number[] | null,
    readonly ignoreCase: boolean,
  ) {}

  get httpOnly(): boolean {
    return this.methods !== null || this.notMethods !== null || this.paths !== null || this.notPaths !== null;
  }

  /** `tcpAs`: what an HTTP-only field says about a TCP connection (true: ignored, false: no match). */
  match(r: AuthzRequest, tcpAs: boolean): boolean {
    if (this.ports !== null && !this.ports.includes(r.port)) return false;
    const method = r.method;
    const path = r.path;
    if (method === null || path === null) return !this.httpOnly || tcpAs;
    if (this.methods !== null && !this.methods.includes(method)) return false;
    if (this.notMethods !== null && this.notMethods.includes(method)) return false;
    if (this.paths !== null && !anyMatch(this.paths, path, r.pathEnd, this.ignoreCase)) return false;
    if (this.notPaths !== null && anyMatch(this.notPaths, path, r.pathEnd, this.ignoreCase)) return false;
    return true;
  }
}

class Condition {
  constructor(
    readonly header: string,
    readonly values: readonly Pattern[] | null,
    readonly notValues: readonly Pattern[] | null,
  ) {}

  /** values: some field of that name has one of them; notValues: no field of that name has any of them. */
  match(headers: readonly string[]): boolean {
    let some = false;
    for (let i = 0; i < headers.length; i += 2) {
      if (headers[i] !== this.header) continue;
      const v = headers[i + 1] as string;
      if (this.notValues !== null && anyMatch(this.notValues, v, v.length)) return false;
      if (this.values !== null && anyMatch(this.values, v, v.length)) some = true;
    }
    return this.values === null || some;
  }
}

class Rule {
  constructor(
    readonly from: readonly Source[] | null,
    readonly to: readonly Operation[] | null,
    readonly when: readonly Condition[] | null,
  ) {}

  match(r: AuthzRequest, tcpAs: boolean): boolean {
    if (this.from !== null) {
      let ok = false;
      for (let i = 0; i < this.from.length && !ok; i++) ok = (this.from[i] as Source).match(r.principal);
      if (!ok) return false;
    }
    if (this.to !== null) {
      let ok = false;
      for (let i = 0; i < this.to.length && !ok; i++) ok = (this.to[i] as Operation).match(r, tcpAs);
      if (!ok) return false;
    }
    if (this.when !== null) {
      // Header conditions are HTTP-only too.
      if (r.method === null) return tcpAs;
      for (let i = 0; i < this.when.length; i++) if (!(this.when[i] as Condition).match(r.headers)) return false;
    }
    return true;
  }
}

class CompiledPolicy {
  constructor(
    /** "namespace/name", what x-mycel-error names. */
    readonly id: string,
    readonly deny: boolean,
    readonly rules: readonly Rule[],
    /** The policy could not be compiled: as a DENY it denies everything, as an ALLOW it allows nothing. */
    readonly broken: string | null,
  ) {}

  match(r: AuthzRequest): boolean {
    if (this.broken !== null) return this.deny;
    // For a TCP connection, a DENY rule ignores its HTTP-only fields (it denies more), an ALLOW rule fails on them.
    const tcpAs = this.deny;
    for (let i = 0; i < this.rules.length; i++) if ((this.rules[i] as Rule).match(r, tcpAs)) return true;
    return false;
  }
}

/** The authorization of one service: its policies compiled; `decide` returns null (allowed) or what denied. */
export class Authorization {
  /** Whether any policy applies at all (none: every request is allowed and nothing needs evaluating). */
  readonly empty: boolean;
  /** Whether some rule looks at the port (the caller works the port out only then). */
  readonly usesPorts: boolean;
  private readonly denies: readonly CompiledPolicy[];
  private readonly allows: readonly CompiledPolicy[];
  /** What a request that no ALLOW policy matches is denied by: the ALLOW policies' names. */
  private readonly allowIds: string;

  constructor(policies: readonly CompiledPolicy[], usesPorts: boolean) {
    this.denies = policies.filter((p) => p.deny);
    this.allows = policies.filter((p) => !p.deny);
    this.allowIds = this.allows.map((p) => p.id).join(',');
    this.empty = policies.length === 0;
    this.usesPorts = usesPorts;
  }

  /** Null when the request may pass; else the "namespace/name" of the policy (or ALLOW policies) that refuse it. */
  decide(r: AuthzRequest): string | null {
    const denies = this.denies;
    for (let i = 0; i < denies.length; i++) if ((denies[i] as CompiledPolicy).match(r)) return (denies[i] as CompiledPolicy).id;
    const allows = this.allows;
    if (allows.length === 0) return null;
    for (let i = 0; i < allows.length; i++) if ((allows[i] as CompiledPolicy).match(r)) return null;
    return this.allowIds;
  }

  /** Policies that failed to compile, with the reason (for the log). */
  get broken(): Array<{ policy: string; reason: string }> {
    return [...this.denies, ...this.allows].filter((p) => p.broken !== null).map((p) => ({ policy: p.id, reason: p.broken as string }));
  }
}

export const ALLOW_ALL = new Authorization([], false);

const list = <T, U>(xs: readonly T[] | undefined, f: (x: T) => U): U[] | null => (xs === undefined ? null : xs.map(f));

function compileRule(rule: AuthorizationPolicy['spec']['rules'][number], trustDomain: string, namespace: string): { rule: Rule; usesPorts: boolean } {
  let usesPorts = false;
  const from = list(rule.from, ({ source: s }) => {
    const ns = list(s.namespaces, (n) => ({ kind: PREFIX, text: `spiffe://${trustDomain}/ns/${n}/svc/` }));
    const svc = list(s.services, (ref) => {
      const slash = ref.indexOf('/');
      const [n, name] = slash === -1 ? [namespace, ref] : [ref.slice(0, slash), ref.slice(slash + 1)];
      return { kind: EXACT, text: `spiffe://${trustDomain}/ns/${n}/svc/${name}` };
    });
    return new Source(list(s.principals, pattern), list(s.notPrincipals, pattern), ns, svc);
  });
  const to = list(rule.to, ({ operation: o }) => {
    if (o.ports !== undefined) usesPorts = true;
    const ignoreCase = o.ignorePathCase === true;
    const pathPattern = (p: string) => pattern(ignoreCase ? p.toLowerCase() : p);
    return new Operation(o.methods ?? null, o.notMethods ?? null, list(o.paths, pathPattern), list(o.notPaths, pathPattern), o.ports ?? null, ignoreCase);
  });
  const when = list(rule.when, (c) => new Condition(c.header.toLowerCase(), list(c.values, pattern), list(c.notValues, pattern)));
  return { rule: new Rule(from, to, when), usesPorts };
}

/**
 * Compiles the policies that target `service` in `namespace`. A policy that cannot be compiled is kept as broken, so
 * that the service fails closed (a broken DENY denies everything, a broken ALLOW allows nothing).
 */
export function compileAuthorization(policies: readonly AuthorizationPolicy[], service: string, namespace: string, trustDomain: string): Authorization {
  const out: CompiledPolicy[] = [];
  let usesPorts = false;
  for (const p of policies) {
    if (p.spec?.targetRef?.name !== service || (p.metadata.namespace ?? 'default') !== namespace) continue;
    const id = `${p.metadata.namespace ?? 'default'}/${p.metadata.name}`;
    const deny = p.spec.action === 'DENY';
    try {
      const rules: Rule[] = [];
      for (const r of p.spec.rules ?? []) {
        const c = compileRule(r, trustDomain, namespace);
        rules.push(c.rule);
        usesPorts ||= c.usesPorts;
      }
      out.push(new CompiledPolicy(id, deny, rules, null));
    } catch (err) {
      out.push(new CompiledPolicy(id, deny, [], (err as Error).message ?? String(err)));
    }
  }
  return new Authorization(out, usesPorts);
}
