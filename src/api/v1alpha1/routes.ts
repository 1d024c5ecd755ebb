// Schemas of the Gateway API route kinds as a mesh uses them (GAMMA: parentRefs name a Service): HTTPRoute and GRPCRoute
// (gateway.networking.k8s.io/v1), TCPRoute (v1alpha2, also v1), field for field, plus Mycel's own Fault filter kind.
// The checks Kubernetes does with CEL rules are done here with rawCheck, so that a file is refused before it runs.

import * as v from 'valibot';
import { duration, int, list, Metadata, name, obj, pathOf, port, str } from './schema-parts.js';

export const GATEWAY_API_V1 = 'gateway.networking.k8s.io/v1';
export const MYCEL_GROUP = 'mycel.dev';

const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
const PRECISE_HOSTNAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const HOSTNAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** GEP-2257 durations: "1h", "30s", "500ms", "1h30m" (no fractions, at most four parts). */
const GATEWAY_DURATION = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;
/** Header values: visible characters, spaces and tabs; never CR, LF or NUL (they would split the header block). */
const HEADER_VALUE = /^[^\x00-\x08\x0a-\x1f\x7f]*$/;
const EXACT_PATH_CHARS = /^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+$/;
const GRPC_SERVICE = /^\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$/i;
const GRPC_METHOD = /^[A-Za-z_][A-Za-z_0-9]*$/;

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] as const;

/**
 * Regular expressions in matches are JavaScript regular expressions that must match the whole value (as Envoy's RE2
 * matches do): `/users/[0-9]+` matches "/users/42" but not "/users/42/orders".
 */
export function fullMatchRegex(source: string): RegExp | undefined {
  try {
    return new RegExp(`^(?:${source})$`);
  } catch {
    return undefined;
  }
}

const regexIssue = (source: string): string | undefined => {
  try {
    new RegExp(source);
    return undefined;
  } catch (err) {
    return `expected a valid regular expression: ${(err as Error).message}`;
  }
};

const headerName = v.pipe(str('a header name'), v.minLength(1, 'expected a header name'), v.maxLength(256, 'expected at most 256 characters'), v.regex(HEADER_NAME, 'expected a header name: letters, digits and !#$%&\'*+-.^_`|~'));
const headerValue = v.pipe(str('a header value'), v.maxLength(4096, 'expected at most 4096 characters'), v.regex(HEADER_VALUE, 'expected a header value without control characters (CR, LF, NUL)'));
const preciseHostname = v.pipe(str('a host name'), v.maxLength(253, 'expected at most 253 characters'), v.regex(PRECISE_HOSTNAME, 'expected a lower-case host name such as api.example.com'));
const hostname = v.pipe(str('a host name'), v.maxLength(253, 'expected at most 253 characters'), v.regex(HOSTNAME, 'expected a lower-case host name, optionally starting with "*."'));
const sectionName = v.pipe(str('a name'), v.maxLength(253, 'expected at most 253 characters'), v.regex(PRECISE_HOSTNAME, 'expected a lower-case name (letters, digits, "-" and ".")'));
const objectName = v.pipe(str('a name'), v.minLength(1, 'expected a name'), v.maxLength(253, 'expected at most 253 characters'));
const gatewayDuration = v.pipe(str('a duration'), v.regex(GATEWAY_DURATION, 'expected a Gateway API duration such as "10s", "500ms" or "1m30s"'));
const percentage = v.pipe(v.number('expected a number'), v.minValue(0, 'expected a percentage >= 0'), v.maxValue(100, 'expected a percentage <= 100'));

// ---- references -----------------------------------------------------------------------------------------------------

/** A route's parent: in a mesh, the Service whose traffic the route takes over (all its ports, or `port` / `sectionName`). */
export const ParentReference = obj({
  // Mycel has no Gateway kind, so the parent defaults to a Service (Gateway API's own default would be a Gateway).
  group: v.optional(v.literal('', 'Mycel routes attach to Services: expected group "" (the core API group)'), ''),
  kind: v.optional(v.literal('Service', 'Mycel routes attach to Services: expected kind Service'), 'Service'),
  namespace: v.optional(name),
  name,
  /** The name of one of the Service's ports. */
  sectionName: v.optional(sectionName),
  port: v.optional(port),
});
export type ParentReference = v.InferOutput<typeof ParentReference>;

/**
 * Where traffic goes: a Service (`kind: Service`, the default), or a version subset of one. A subset is referenced
 * with the Gateway API's own extension point for backends, a group and kind of the implementation's:
 *
 *     backendRefs: [ { group: mycel.dev, kind: ServiceSubset, name: reviews.v2, port: 9080 } ]
 *
 * names subset `v2` of Service `reviews` (declared in its `spec.subsets`). Only standard BackendObjectReference
 * fields are used, so the route stays valid Gateway API (a CRD schema would accept it as is) and tools that read
 * backendRefs still see a plain object reference; the dotted name cannot clash with a Service, whose names are DNS
 * labels. The alternative of an extra `subset:` field would be rejected by the Gateway API's closed schema.
 */
const backendObjectEntries = {
  group: v.optional(v.picklist(['', MYCEL_GROUP], `expected group "" (a Service) or "${MYCEL_GROUP}" (a ServiceSubset)`), ''),
  kind: v.optional(v.picklist(['Service', 'ServiceSubset'], 'expected kind Service or ServiceSubset'), 'Service'),
  name: objectName,
  namespace: v.optional(name),
  /** The backend's port; absent: the port the request was addressed to if the backend has it, else its only port. */
  port: v.optional(port),
};

const SUBSET_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\.[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function checkBackendObject(ref: { group: string; kind: string; name: string }, addIssue: (info: v.RawCheckIssueInfo<unknown>) => void, root: unknown): void {
  if (ref.kind === 'Service') {
    if (ref.group !== '') addIssue({ message: 'kind Service is in group "" (the core API group)', path: pathOf(root, ['group']) });
    else if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(ref.name) || ref.name.length > 63) addIssue({ message: 'expected a Service name (a DNS label)', path: pathOf(root, ['name']) });
  } else {
    if (ref.group !== MYCEL_GROUP) addIssue({ message: `kind ServiceSubset is in group "${MYCEL_GROUP}"`, path: pathOf(root, ['group']) });
    else if (!SUBSET_NAME.test(ref.name)) addIssue({ message: 'expected <service>.<subset>, e.g. reviews.v2', path: pathOf(root, ['name']) });
  }
}

const backendObjectCheck = <T extends { group: string; kind: string; name: string }>() =>
  v.rawCheck<T>(({ dataset, addIssue }) => {
    if (dataset.typed) checkBackendObject(dataset.value, addIssue, dataset.value);
  });

export const BackendObjectReference = v.pipe(obj(backendObjectEntries), backendObjectCheck());
export type BackendObjectReference = v.InferOutput<typeof BackendObjectReference>;

/** Share of the rule's traffic, relative to the other backends' weights (0: none). */
const weight = v.optional(int('a weight', 0, 1_000_000), 1);

export const BackendRef = v.pipe(obj({ ...backendObjectEntries, weight }), backendObjectCheck());
export type BackendRef = v.InferOutput<typeof BackendRef>;

/** The Mycel kinds a route filter can name with ExtensionRef. */
export const FILTER_EXTENSION_KINDS = ['Fault', 'LocalRateLimit'] as const;

/** ExtensionRef: Mycel's filter extensions are its Fault and LocalRateLimit kinds. */
export const LocalObjectReference = v.pipe(
  obj({ group: str('a group'), kind: str('a kind'), name: objectName }),
  v.check(
    (r) => r.group === MYCEL_GROUP && (FILTER_EXTENSION_KINDS as readonly string[]).includes(r.kind),
    `Mycel's filter extensions: expected group ${MYCEL_GROUP}, kind ${FILTER_EXTENSION_KINDS.join(' or ')}`,
  ),
);

// ---- filters ----------------------------------------------------------------------------------------------------

export const HTTPHeader = obj({ name: headerName, value: headerValue });

/** Fields the proxy owns: changing them would break the framing or the connection. */
const CONNECTION_FIELDS = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'content-length', 'upgrade', 'te', 'trailer', 'http2-settings']);

/** Set, add or remove request or response header fields; one action per header name. */
export const HTTPHeaderFilter = v.pipe(
  obj({
    set: v.optional(list(HTTPHeader, 'headers', 16)),
    add: v.optional(list(HTTPHeader, 'headers', 16)),
    remove: v.optional(list(headerName, 'header names', 16)),
  }),
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const f = dataset.value;
    const seen = new Set<string>();
    const visit = (names: string[], field: string) =>
      names.forEach((n, i) => {
        const k = n.toLowerCase();
        if (seen.has(k)) addIssue({ message: `header "${n}" has more than one action; give each header name one of set, add, remove`, path: pathOf(f, field === 'remove' ? [field, i] : [field, i, 'name']) });
        seen.add(k);
      });
    visit((f.set ?? []).map((h) => h.name), 'set');
    visit((f.add ?? []).map((h) => h.name), 'add');
    visit(f.remove ?? [], 'remove');
    const fixed = (names: string[], field: string) =>
      names.forEach((n, i) => {
        const k = n.toLowerCase();
        if (k === 'host') addIssue({ message: 'the Host header cannot be changed here; use a URLRewrite filter with hostname', path: pathOf(f, field === 'remove' ? [field, i] : [field, i, 'name']) });
        else if (CONNECTION_FIELDS.has(k)) addIssue({ message: `header "${n}" belongs to the connection or the message framing and cannot be changed by a route`, path: pathOf(f, field === 'remove' ? [field, i] : [field, i, 'name']) });
      });
    fixed((f.set ?? []).map((h) => h.name), 'set');
    fixed((f.add ?? []).map((h) => h.name), 'add');
    fixed(f.remove ?? [], 'remove');
  }),
);
export type HTTPHeaderFilter = v.InferOutput<typeof HTTPHeaderFilter>;

const pathValue = v.pipe(str('a path'), v.maxLength(1024, 'expected at most 1024 characters'), v.regex(/^[^\s?#]*$/, 'expected a path without spaces, "?" or "#"'));

export const HTTPPathModifier = v.pipe(
  obj({
    type: v.picklist(['ReplaceFullPath', 'ReplacePrefixMatch'], 'expected ReplaceFullPath or ReplacePrefixMatch'),
    replaceFullPath: v.optional(pathValue),
    replacePrefixMatch: v.optional(pathValue),
  }),
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const m = dataset.value;
    const want = m.type === 'ReplaceFullPath' ? 'replaceFullPath' : 'replacePrefixMatch';
    const other = m.type === 'ReplaceFullPath' ? 'replacePrefixMatch' : 'replaceFullPath';
    if (m[want] === undefined) addIssue({ message: `${want} must be set when type is ${m.type}`, path: pathOf(m, ['type']) });
    if (m[other] !== undefined) addIssue({ message: `${other} must not be set when type is ${m.type}`, path: pathOf(m, [other]) });
    if (m.replaceFullPath !== undefined && !m.replaceFullPath.startsWith('/')) addIssue({ message: 'expected an absolute path starting with "/"', path: pathOf(m, ['replaceFullPath']) });
    if (m.replacePrefixMatch !== undefined && m.replacePrefixMatch !== '' && !m.replacePrefixMatch.startsWith('/')) addIssue({ message: 'expected "" or a path starting with "/"', path: pathOf(m, ['replacePrefixMatch']) });
  }),
);
export type HTTPPathModifier = v.InferOutput<typeof HTTPPathModifier>;

export const HTTPRequestRedirectFilter = obj({
  /** Scheme of the Location; absent: the request's (http: apps talk plain HTTP to their sidecar). */
  scheme: v.optional(v.picklist(['http', 'https'], 'expected http or https')),
  hostname: v.optional(preciseHostname),
  path: v.optional(HTTPPathModifier),
  port: v.optional(port),
  statusCode: v.optional(v.picklist([301, 302, 303, 307, 308], 'expected one of 301, 302, 303, 307, 308'), 302),
});
export type HTTPRequestRedirectFilter = v.InferOutput<typeof HTTPRequestRedirectFilter>;

export const HTTPURLRewriteFilter = obj({
  /** Replaces the Host (:authority) the backend sees. */
  hostname: v.optional(preciseHostname),
  path: v.optional(HTTPPathModifier),
});
export type HTTPURLRewriteFilter = v.InferOutput<typeof HTTPURLRewriteFilter>;

export const HTTPRequestMirrorFilter = v.pipe(
  obj({
    backendRef: BackendObjectReference,
    /** Share of requests mirrored, 0-100 (absent, with no fraction: all). */
    percent: v.optional(int('a percentage', 0, 100)),
    fraction: v.optional(obj({ numerator: int('a numerator', 0, 2 ** 31 - 1), denominator: v.optional(int('a denominator', 1, 2 ** 31 - 1), 100) })),
  }),
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const m = dataset.value;
    if (m.percent !== undefined && m.fraction !== undefined) addIssue({ message: 'only one of percent or fraction may be set', path: pathOf(m, ['fraction']) });
    if (m.fraction !== undefined && m.fraction.numerator > m.fraction.denominator) addIssue({ message: 'numerator must not exceed denominator', path: pathOf(m, ['fraction', 'numerator']) });
  }),
);
export type HTTPRequestMirrorFilter = v.InferOutput<typeof HTTPRequestMirrorFilter>;

/** The field of a filter that holds the settings of each filter type. */
const FILTER_FIELDS = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  RequestMirror: 'requestMirror',
  RequestRedirect: 'requestRedirect',
  URLRewrite: 'urlRewrite',
  ExtensionRef: 'extensionRef',
} as const;
type FilterType = keyof typeof FILTER_FIELDS;

/** A filter is a tagged union: `type` names the one settings field that must be present. */
function filterSchema<T extends FilterType>(types: readonly T[]) {
  const fields = {
    requestHeaderModifier: v.optional(HTTPHeaderFilter),
    responseHeaderModifier: v.optional(HTTPHeaderFilter),
    requestMirror: v.optional(HTTPRequestMirrorFilter),
    requestRedirect: v.optional(HTTPRequestRedirectFilter),
    urlRewrite: v.optional(HTTPURLRewriteFilter),
    extensionRef: v.optional(LocalObjectReference),
  };
  const allowed = new Set<string>(types.map((t) => FILTER_FIELDS[t]));
  const entries = Object.fromEntries(Object.entries(fields).filter(([k]) => allowed.has(k))) as Pick<typeof fields, (typeof FILTER_FIELDS)[T]>;
  return v.pipe(
    obj({ type: v.picklist(types, `expected one of ${types.join(', ')}`), ...entries }),
    v.rawCheck(({ dataset, addIssue }) => {
      if (!dataset.typed) return;
      const f = dataset.value as Record<string, unknown> & { type: T };
      const want = FILTER_FIELDS[f.type];
      if (f[want] === undefined) addIssue({ message: `${want} must be set for a ${f.type} filter`, path: pathOf(f, ['type']) });
      for (const field of allowed) {
        if (field !== want && f[field] !== undefined) addIssue({ message: `${field} must not be set on a ${f.type} filter`, path: pathOf(f, [field]) });
      }
    }),
  );
}

export const HTTPRouteFilter = filterSchema(['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'RequestRedirect', 'URLRewrite', 'ExtensionRef']);
export type HTTPRouteFilter = v.InferOutput<typeof HTTPRouteFilter>;
export const GRPCRouteFilter = filterSchema(['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'ExtensionRef']);
export type GRPCRouteFilter = v.InferOutput<typeof GRPCRouteFilter>;

type AddIssue = (info: v.RawCheckIssueInfo<unknown>) => void;

/** Gateway API list rules for filters: most types at most once, and never a redirect together with a rewrite. */
function checkFilterList(filters: readonly { type: string }[], addIssue: AddIssue, root: unknown, at: (string | number)[]): void {
  const once = ['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestRedirect', 'URLRewrite'];
  const seen = new Set<string>();
  filters.forEach((f, i) => {
    if (once.includes(f.type) && seen.has(f.type)) addIssue({ message: `${f.type} filter cannot be repeated`, path: pathOf(root, [...at, i, 'type']) });
    seen.add(f.type);
  });
  if (seen.has('RequestRedirect') && seen.has('URLRewrite')) {
    addIssue({ message: 'a RequestRedirect and a URLRewrite filter cannot be used together', path: pathOf(root, at) });
  }
}

// ---- HTTPRoute ----------------------------------------------------------------------------------------------------

export const HTTPPathMatch = v.pipe(
  obj({
    type: v.optional(v.picklist(['Exact', 'PathPrefix', 'RegularExpression'], 'expected Exact, PathPrefix or RegularExpression'), 'PathPrefix'),
    value: v.optional(v.pipe(str('a path'), v.maxLength(1024, 'expected at most 1024 characters')), '/'),
  }),
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const { type, value } = dataset.value;
    const at = pathOf(dataset.value, ['value']);
    if (type === 'RegularExpression') {
      const bad = regexIssue(value);
      if (bad !== undefined) addIssue({ message: bad, path: at });
      return;
    }
    let problem: string | undefined;
    if (!value.startsWith('/')) problem = 'must be an absolute path and start with "/"';
    else if (!EXACT_PATH_CHARS.test(value)) problem = 'must only contain path characters (letters, digits, -._~!$&\'()*+,;=:@/ and %XX escapes)';
    else if (value.includes('//')) problem = 'must not contain "//"';
    else if (value.includes('/./') || value.includes('/../') || value.endsWith('/.') || value.endsWith('/..')) problem = 'must not contain "." or ".." segments';
    else if (/%2f/i.test(value)) problem = 'must not contain an escaped "/" (%2F)';
    if (problem !== undefined) addIssue({ message: `${type} path ${problem}`, path: at });
  }),
);

const valueMatchEntries = {
  type: v.optional(v.picklist(['Exact', 'RegularExpression'], 'expected Exact or RegularExpression'), 'Exact'),
  name: headerName,
  value: headerValue,
};
const regexValueCheck = <T extends { type: string; value: string }>() =>
  v.rawCheck<T>(({ dataset, addIssue }) => {
    if (!dataset.typed || dataset.value.type !== 'RegularExpression') return;
    const bad = regexIssue(dataset.value.value);
    if (bad !== undefined) addIssue({ message: bad, path: pathOf(dataset.value, ['value']) });
  });

/** Header names match case-insensitively; query parameter names exactly. */
export const HTTPHeaderMatch = v.pipe(obj(valueMatchEntries), regexValueCheck());
export const HTTPQueryParamMatch = v.pipe(obj(valueMatchEntries), regexValueCheck());

export const HTTPRouteMatch = obj({
  path: v.optional(HTTPPathMatch, { type: 'PathPrefix', value: '/' }),
  headers: v.optional(list(HTTPHeaderMatch, 'header matches', 16)),
  queryParams: v.optional(list(HTTPQueryParamMatch, 'query parameter matches', 16)),
  method: v.optional(v.picklist(HTTP_METHODS, `expected one of ${HTTP_METHODS.join(', ')}`)),
});
export type HTTPRouteMatch = v.InferOutput<typeof HTTPRouteMatch>;

export const HTTPBackendRef = v.pipe(obj({ ...backendObjectEntries, weight, filters: v.optional(list(HTTPRouteFilter, 'filters', 16)) }), backendObjectCheck());
export type HTTPBackendRef = v.InferOutput<typeof HTTPBackendRef>;

export const HTTPRouteTimeouts = obj({
  /** The whole exchange, from routing to the last response byte ("0s": no limit). */
  request: v.optional(gatewayDuration),
  /** One request to a backend, from sending it to the last response byte ("0s": no limit). */
  backendRequest: v.optional(gatewayDuration),
});

/** A Gateway API duration in milliseconds (its format is checked by the schema). */
export function gatewayDurationMs(text: string): number {
  let total = 0;
  for (const m of text.matchAll(/(\d+)(ms|h|m|s)/g)) total += Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 's' ? 1000 : m[2] === 'm' ? 60_000 : 3_600_000);
  return total;
}

const DEFAULT_MATCHES = [{ path: { type: 'PathPrefix' as const, value: '/' } }];

export const HTTPRouteRule = v.pipe(
  obj({
    name: v.optional(sectionName),
    matches: v.optional(list(HTTPRouteMatch, 'matches', 64), DEFAULT_MATCHES),
    filters: v.optional(list(HTTPRouteFilter, 'filters', 16)),
    backendRefs: v.optional(list(HTTPBackendRef, 'backendRefs', 16)),
    timeouts: v.optional(HTTPRouteTimeouts),
  }),
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const rule = dataset.value;
    const filters = rule.filters ?? [];
    checkFilterList(filters, addIssue, rule, ['filters']);
    const backends = rule.backendRefs ?? [];
    backends.forEach((b, i) => checkFilterList(b.filters ?? [], addIssue, rule, ['backendRefs', i, 'filters']));
    filters.forEach((f, i) => {
      if (f.type === 'RequestRedirect' && backends.length > 0) addIssue({ message: 'a RequestRedirect filter must not be used together with backendRefs', path: pathOf(rule, ['filters', i]) });
    });
    // ReplacePrefixMatch replaces the matched prefix, so the rule must have exactly one match, a PathPrefix one.
    const onePrefix = rule.matches.length === 1 && rule.matches[0]?.path.type === 'PathPrefix';
    const prefixFilters: (string | number)[][] = [];
    const visit = (list: readonly HTTPRouteFilter[], at: (string | number)[]) =>
      list.forEach((f, i) => {
        const p = f.type === 'URLRewrite' ? f.urlRewrite?.path : f.type === 'RequestRedirect' ? f.requestRedirect?.path : undefined;
        if (p?.type === 'ReplacePrefixMatch') prefixFilters.push([...at, i]);
      });
    visit(filters, ['filters']);
    backends.forEach((b, i) => visit(b.filters ?? [], ['backendRefs', i, 'filters']));
    if (!onePrefix) for (const at of prefixFilters) addIssue({ message: 'ReplacePrefixMatch needs the rule to have exactly one match, with a PathPrefix path', path: pathOf(rule, at) });
    const t = rule.timeouts;
    if (t?.request !== undefined && t.backendRequest !== undefined) {
      const req = gatewayDurationMs(t.request);
      if (req !== 0 && gatewayDurationMs(t.backendRequest) > req) addIssue({ message: 'backendRequest timeout cannot be longer than the request timeout', path: pathOf(rule, ['timeouts', 'backendRequest']) });
    }
  }),
);
export type HTTPRouteRule = v.InferOutput<typeof HTTPRouteRule>;

/** Rule names unique within a route, and at most 128 matches over all rules (Gateway API limits). */
function routeRulesCheck<T extends { rules: { name?: string | undefined; matches?: readonly unknown[] | undefined }[] }>() {
  return v.rawCheck<T>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const spec = dataset.value;
    const names = new Set<string>();
    let matches = 0;
    spec.rules.forEach((r, i) => {
      if (r.name !== undefined) {
        if (names.has(r.name)) addIssue({ message: `rule name "${r.name}" must be unique within the route`, path: pathOf(spec, ['rules', i, 'name']) });
        names.add(r.name);
      }
      matches += r.matches?.length ?? 0;
    });
    if (matches > 128) addIssue({ message: `a route may have at most 128 matches over all its rules (has ${matches})`, path: pathOf(spec, ['rules']) });
  });
}

const commonRouteEntries = {
  parentRefs: v.optional(list(ParentReference, 'parentRefs', 32)),
  /** Limits the route to requests whose Host is one of these (`*.` prefix: any subdomain). */
  hostnames: v.optional(list(hostname, 'hostnames', 16)),
};

export const HTTPRoute = obj({
  apiVersion: v.literal(GATEWAY_API_V1, `expected apiVersion ${GATEWAY_API_V1}`),
  kind: v.literal('HTTPRoute'),
  metadata: Metadata,
  spec: v.pipe(obj({ ...commonRouteEntries, rules: v.optional(list(HTTPRouteRule, 'rules', 16), [{}]) }), routeRulesCheck()),
});
export type HTTPRoute = v.InferOutput<typeof HTTPRoute>;

// ---- GRPCRoute ----------------------------------------------------------------------------------------------------

export const GRPCMethodMatch = v.pipe(
  obj({
    type: v.optional(v.picklist(['Exact', 'RegularExpression'], 'expected Exact or RegularExpression'), 'Exact'),
    /** Fully qualified service, e.g. "helloworld.Greeter"; absent: any service. */
    service: v.optional(v.pipe(str('a service name'), v.maxLength(1024, 'expected at most 1024 characters'))),
    /** Method name, e.g. "SayHello"; absent: any method. */
    method: v.optional(v.pipe(str('a method name'), v.maxLength(1024, 'expected at most 1024 characters'))),
  }),
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const m = dataset.value;
    if (!m.service && !m.method) addIssue({ message: 'one or both of service and method must be set', path: pathOf(m, ['type']) });
    for (const field of ['service', 'method'] as const) {
      const value = m[field];
      if (value === undefined) continue;
      if (m.type === 'RegularExpression') {
        const bad = regexIssue(value);
        if (bad !== undefined) addIssue({ message: bad, path: pathOf(m, [field]) });
      } else if (!(field === 'service' ? GRPC_SERVICE : GRPC_METHOD).test(value)) {
        addIssue({ message: field === 'service' ? 'expected a gRPC service name such as helloworld.Greeter' : 'expected a gRPC method name such as SayHello', path: pathOf(m, [field]) });
      }
    }
  }),
);

export const GRPCHeaderMatch = v.pipe(obj({ ...valueMatchEntries, value: v.pipe(headerValue, v.minLength(1, 'expected a value')) }), regexValueCheck());

export const GRPCRouteMatch = obj({
  method: v.optional(GRPCMethodMatch),
  headers: v.optional(list(GRPCHeaderMatch, 'header matches', 16)),
});
export type GRPCRouteMatch = v.InferOutput<typeof GRPCRouteMatch>;

export const GRPCBackendRef = v.pipe(obj({ ...backendObjectEntries, weight, filters: v.optional(list(GRPCRouteFilter, 'filters', 16)) }), backendObjectCheck());

export const GRPCRouteRule = v.pipe(
  obj({
    name: v.optional(sectionName),
    /** Absent or empty: every gRPC request. */
    matches: v.optional(list(GRPCRouteMatch, 'matches', 64)),
    filters: v.optional(list(GRPCRouteFilter, 'filters', 16)),
    backendRefs: v.optional(list(GRPCBackendRef, 'backendRefs', 16)),
  }),
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const rule = dataset.value;
    checkFilterList(rule.filters ?? [], addIssue, rule, ['filters']);
    (rule.backendRefs ?? []).forEach((b, i) => checkFilterList(b.filters ?? [], addIssue, rule, ['backendRefs', i, 'filters']));
  }),
);
export type GRPCRouteRule = v.InferOutput<typeof GRPCRouteRule>;

export const GRPCRoute = obj({
  apiVersion: v.literal(GATEWAY_API_V1, `expected apiVersion ${GATEWAY_API_V1}`),
  kind: v.literal('GRPCRoute'),
  metadata: Metadata,
  spec: v.pipe(obj({ ...commonRouteEntries, rules: v.optional(list(GRPCRouteRule, 'rules', 16), [{}]) }), routeRulesCheck()),
});
export type GRPCRoute = v.InferOutput<typeof GRPCRoute>;

// ---- TCPRoute -----------------------------------------------------------------------------------------------------

export const TCPRouteRule = obj({
  name: v.optional(sectionName),
  backendRefs: v.pipe(list(BackendRef, 'backendRefs', 16), v.minLength(1, 'a TCP rule needs at least one backendRef')),
});

export const TCPRoute = obj({
  // v1alpha2 is where TCPRoute has lived for years; v1 is its newer home, with the same fields.
  apiVersion: v.picklist(['gateway.networking.k8s.io/v1alpha2', GATEWAY_API_V1], 'expected apiVersion gateway.networking.k8s.io/v1alpha2'),
  kind: v.literal('TCPRoute'),
  metadata: Metadata,
  spec: obj({
    parentRefs: commonRouteEntries.parentRefs,
    // Gateway API v1 allows only one rule too.
    rules: v.pipe(
      v.array(TCPRouteRule, 'expected a list of rules'),
      v.minLength(1, 'a TCPRoute needs one rule'),
      v.maxLength(1, 'Mycel takes one rule per TCPRoute: TCP has nothing to match on, so a second rule could never be chosen'),
    ),
  }),
});
export type TCPRoute = v.InferOutput<typeof TCPRoute>;

// ---- Fault (mycel.dev) --------------------------------------------------------------------------------------------

/** Fault injection, used from a route rule as `{type: ExtensionRef, extensionRef: {group: mycel.dev, kind: Fault, name}}`. */
export const Fault = obj({
  apiVersion: v.literal('mycel.dev/v1alpha1', 'expected apiVersion mycel.dev/v1alpha1'),
  kind: v.literal('Fault'),
  metadata: Metadata,
  spec: v.pipe(
    obj({
      /** Holds matching requests for `fixedDelay` before they go on. */
      delay: v.optional(obj({ fixedDelay: duration, percentage: v.optional(percentage, 100) })),
      /** Answers matching requests at once with an error status instead of sending them. */
      abort: v.optional(
        v.pipe(
          obj({ httpStatus: v.optional(int('an HTTP status', 200, 599)), grpcStatus: v.optional(int('a gRPC status code', 1, 16)), percentage: v.optional(percentage, 100) }),
          v.check((a) => (a.httpStatus === undefined) !== (a.grpcStatus === undefined), 'set exactly one of httpStatus and grpcStatus'),
        ),
      ),
    }),
    v.check((s) => s.delay !== undefined || s.abort !== undefined, 'a Fault needs a delay, an abort, or both'),
  ),
});
export type Fault = v.InferOutput<typeof Fault>;

// ---- LocalRateLimit (mycel.dev) -----------------------------------------------------------------------------------

/**
 * A local rate limit of one route rule, used as `{type: ExtensionRef, extensionRef: {group: mycel.dev, kind:
 * LocalRateLimit, name}}`: each calling sidecar lets `requestsPerUnit` per `unit` through (bursts of `burst`) and
 * answers the rest 429 with Retry-After (gRPC: RESOURCE_EXHAUSTED), as Envoy's local rate limit per route does.
 */
export const LocalRateLimit = obj({
  apiVersion: v.literal('mycel.dev/v1alpha1', 'expected apiVersion mycel.dev/v1alpha1'),
  kind: v.literal('LocalRateLimit'),
  metadata: Metadata,
  spec: obj({
    requestsPerUnit: int('a rate', 1, 1_000_000_000),
    unit: v.picklist(['second', 'minute', 'hour'], 'expected second, minute or hour'),
    /** Requests allowed at once after a quiet spell; absent: requestsPerUnit. */
    burst: v.optional(int('a burst', 1, 1_000_000_000)),
  }),
});
export type LocalRateLimit = v.InferOutput<typeof LocalRateLimit>;

export type Route = HTTPRoute | GRPCRoute | TCPRoute;

/**
 * Gateway API order between routes on a tie: the oldest route (creationTimestamp) first, then "namespace/name"
 * alphabetically. A route without a timestamp (written in a file) counts as newer than any with one.
 */
export function compareRouteAge(a: { namespace: string; name: string; creationTimestamp?: string | undefined }, b: { namespace: string; name: string; creationTimestamp?: string | undefined }): number {
  const ta = a.creationTimestamp === undefined ? Infinity : Date.parse(a.creationTimestamp);
  const tb = b.creationTimestamp === undefined ? Infinity : Date.parse(b.creationTimestamp);
  if (ta !== tb) return ta < tb ? -1 : 1;
  const na = `${a.namespace}/${a.name}`;
  const nb = `${b.namespace}/${b.name}`;
  return na < nb ? -1 : na > nb ? 1 : 0;
}
