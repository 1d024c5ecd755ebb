// What config is in force for one service, in a line each: the routes attached to it (matches, filters, weighted
// backends) and the policies that target it (traffic, mTLS, authorization), from the resource API's objects.

import type { Resource } from './api.js';

export interface ConfigLine {
  kind: string;
  name: string;
  /** One line per rule or setting. */
  lines: string[];
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const str = (v: unknown): string => (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v));

const ROUTE_KINDS = new Set(['HTTPRoute', 'GRPCRoute', 'TCPRoute']);
const POLICY_KINDS = new Set(['TrafficPolicy', 'PeerAuthentication', 'AuthorizationPolicy']);

function namespaceOf(r: Resource): string {
  return r.metadata.namespace ?? 'default';
}

function matchText(m: Obj): string {
  const parts: string[] = [];
  const path = obj(m.path);
  // A prefix of "/" matches everything: the default the API fills in, not worth a word.
  if (path.value !== undefined && !(path.value === '/' && path.type !== 'Exact')) parts.push(`path ${path.type === 'Exact' ? '=' : path.type === 'RegularExpression' ? '~' : 'starts'} ${str(path.value)}`);
  if (m.method !== undefined) parts.push(typeof m.method === 'string' ? `method ${m.method}` : `gRPC ${str(obj(m.method).service ?? '*')}/${str(obj(m.method).method ?? '*')}`);
  for (const h of arr(m.headers)) parts.push(`header ${str(obj(h).name)}: ${str(obj(h).value)}`);
  for (const q of arr(m.queryParams)) parts.push(`query ${str(obj(q).name)}=${str(obj(q).value)}`);
  return parts.join(', ');
}

function filterText(f: Obj): string {
  const type = str(f.type);
  if (type === 'ExtensionRef') return `${str(obj(f.extensionRef).kind)} ${str(obj(f.extensionRef).name)}`;
  if (type === 'RequestMirror') return `mirror to ${str(obj(obj(f.requestMirror).backendRef).name)}`;
  return type;
}

function routeLines(spec: Obj): string[] {
  return arr(spec.rules).map((rule) => {
    const r = obj(rule);
    const matches = arr(r.matches).map((m) => matchText(obj(m))).filter((t) => t !== '');
    const filters = arr(r.filters).map((f) => filterText(obj(f)));
    const refs = arr(r.backendRefs).map(obj);
    const total = refs.reduce((sum, o) => sum + (typeof o.weight === 'number' ? o.weight : 1), 0);
    // Weights as shares of the traffic, and only when there is a split to speak of.
    const backends = refs.map((o) => (refs.length > 1 && total > 0 ? `${str(o.name)} ${Math.round(((typeof o.weight === 'number' ? o.weight : 1) / total) * 100)}%` : str(o.name)));
    const when = matches.length > 0 ? `when ${matches.join(' or ')}` : 'every request';
    const then = [filters.length > 0 ? filters.join(', ') : '', backends.length > 0 ? `→ ${backends.join(' / ')}` : ''].filter((t) => t !== '').join(' ');
    return `${when}${then !== '' ? `: ${then}` : ''}`;
  });
}

/** Top-level settings of a policy, one line each (`retry: attempts 2, perTryTimeout 1s, …`). */
function policyLines(spec: Obj): string[] {
  return Object.entries(spec)
    .filter(([k]) => k !== 'targetRef')
    .map(([k, v]) => {
      if (typeof v !== 'object' || v === null) return `${k}: ${str(v)}`;
      if (Array.isArray(v)) return `${k}: ${v.length} ${v.length === 1 ? 'entry' : 'entries'}`;
      return `${k}: ${Object.entries(v as Obj).map(([a, b]) => `${a} ${typeof b === 'object' && b !== null ? JSON.stringify(b).replace(/"/g, '') : str(b)}`).join(', ')}`;
    });
}

export function configFor(resources: Resource[], namespace: string, service: string): { routes: ConfigLine[]; policies: ConfigLine[] } {
  const routes: ConfigLine[] = [];
  const policies: ConfigLine[] = [];
  for (const r of resources) {
    if (namespaceOf(r) !== namespace) continue;
    const spec = obj(r.spec);
    if (ROUTE_KINDS.has(r.kind)) {
      if (!arr(spec.parentRefs).some((p) => obj(p).name === service)) continue;
      routes.push({ kind: r.kind, name: r.metadata.name, lines: routeLines(spec) });
    } else if (POLICY_KINDS.has(r.kind)) {
      const target = obj(spec.targetRef).name;
      // A policy without a target applies mesh-wide (PeerAuthentication's default).
      if (target !== undefined && target !== service) continue;
      policies.push({ kind: r.kind, name: r.metadata.name + (target === undefined ? ' (mesh-wide)' : ''), lines: policyLines(spec) });
    }
  }
  return { routes, policies };
}
