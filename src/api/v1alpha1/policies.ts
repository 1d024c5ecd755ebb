// Schemas of the policy kinds attached to a service: TrafficPolicy (how callers reach it), PeerAuthentication (mTLS
// mode) and AuthorizationPolicy (who may call it). Field names follow Istio's DestinationRule / AuthorizationPolicy
// and Envoy where they exist; every field carries a one-line description that editors show through the JSON Schema.

import * as v from 'valibot';
import { normalizeRequestPath } from '../../security/request-path.js';
import { about, bool, durationOrder, exactlyOne, headerName, httpStatus, int, list, Metadata, name, obj, pathOf, percent, port, positiveDuration, str } from './schema-parts.js';

/** The envelope of a Mycel kind: apiVersion, kind, metadata and its spec. */
const mycelKind = <K extends string, S extends v.GenericSchema>(kind: K, spec: S) =>
  obj({ apiVersion: v.literal('mycel.dev/v1alpha1', 'expected apiVersion mycel.dev/v1alpha1'), kind: v.literal(kind), metadata: Metadata, spec });

/** Gateway API policy attachment (LocalPolicyTargetReference): a Service in the policy's own namespace. */
export const ServiceTargetRef = obj({
  group: v.optional(about('The API group of the target; Service is in the core group "".', v.literal('', 'expected group "" (the core group, where Service is)'))),
  kind: about('The kind of the target.', v.literal('Service', 'expected kind Service')),
  name: about('The name of the Service, in the policy\'s namespace.', name),
});

// ---- TrafficPolicy ---------------------------------------------------------------------------------------------

const HashKey = v.pipe(
  obj({
    header: v.optional(about('Hash the value of this request header.', headerName)),
    cookie: v.optional(
      about(
        'Hash the value of this cookie; with a ttl, a sidecar that finds no such cookie sets one, so that a client sticks to an endpoint.',
        obj({
          name: about('The cookie name.', v.pipe(str('a cookie name'), v.regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'expected a cookie name'))),
          ttl: v.optional(about('Lifetime of a cookie the sidecar sets; absent: hash only cookies the client sends.', positiveDuration)),
          path: v.optional(about('Path attribute of a cookie the sidecar sets.', v.pipe(str('a path'), v.startsWith('/', 'expected a path starting with "/"')))),
        }),
      ),
    ),
    sourceIP: v.optional(about('Hash the caller\'s address, so that each client host sticks to an endpoint.', v.literal(true, 'expected true'))),
  }),
  exactlyOne(['header', 'cookie', 'sourceIP']),
);

const lbType = <T extends string>(type: T) => about(`The balancing algorithm.`, v.literal(type));

export const LoadBalancer = v.variant(
  'type',
  [
    obj({ type: lbType('RoundRobin') }),
    obj({ type: lbType('LeastRequest') }),
    obj({
      type: lbType('EWMA'),
      decay: v.optional(about('Time constant of the peak-EWMA latency estimate: how fast old latencies are forgotten.', positiveDuration), '10s'),
    }),
    obj({
      type: lbType('RingHash'),
      hashKey: about('What to hash, so that requests with one key go to one endpoint while the endpoint set is stable.', HashKey),
      minimumRingSize: v.optional(about('Points on the hash ring, at least; more points spread load more evenly.', int('a ring size', 1, 8_388_608)), 1024),
    }),
    obj({
      type: lbType('Maglev'),
      hashKey: about('What to hash, so that requests with one key go to one endpoint while the endpoint set is stable.', HashKey),
      tableSize: v.optional(about('Size of the Maglev lookup table; a prime well above the endpoint count.', v.pipe(int('a table size', 7, 5_000_011), v.check(isPrime, 'expected a prime number'))), 65537),
    }),
  ],
  'expected type RoundRobin, LeastRequest, EWMA, RingHash or Maglev',
);

function isPrime(n: number): boolean {
  if (n < 2 || n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

const limit = (text: string) => v.optional(about(text, int('a limit', 1, 2 ** 31 - 1)));

export const ConnectionPool = obj({
  maxConnections: limit('Connections each caller\'s sidecar opens to the service at most; absent: no limit.'),
  maxPendingRequests: limit('Requests waiting for a connection or a stream at most; beyond, the circuit is open (503).'),
  maxRequests: limit('Requests in flight to the service at once at most; beyond, the circuit is open (503).'),
  maxRetries: limit('Retries in flight to the service at once at most (on top of the retry budget).'),
});

export const OutlierDetection = v.pipe(
  obj({
    consecutive5xx: v.optional(about('Eject an endpoint after this many 5xx responses (or connect failures) in a row; 0: off.', int('a count', 0, 1000)), 5),
    consecutiveGatewayErrors: v.optional(about('Eject an endpoint after this many 502, 503, 504 or connect failures in a row; absent: off.', int('a count', 1, 1000))),
    interval: v.optional(about('Accepted for Istio/Envoy compatibility; Mycel needs no sweep: an ejected endpoint returns exactly when its ejection time is over.', positiveDuration), '10s'),
    baseEjectionTime: v.optional(about('An ejection lasts this long times the number of times the endpoint has been ejected.', positiveDuration), '30s'),
    maxEjectionTime: v.optional(about('An ejection lasts at most this long.', positiveDuration), '300s'),
    maxEjectionPercent: v.optional(about('Percentage of the service\'s endpoints that may be ejected at once.', percent), 10),
    panicThreshold: v.optional(about('When fewer than this percentage of endpoints are healthy, balance over all of them (ejected or not).', percent), 50),
  }),
  durationOrder('baseEjectionTime', 'maxEjectionTime'),
);

export const HealthCheck = v.pipe(
  obj({
    http: v.optional(
      about(
        'Check with an HTTP GET.',
        obj({
          path: v.optional(about('The path to GET.', v.pipe(str('a path'), v.startsWith('/', 'expected a path starting with "/"'))), '/'),
          expectedStatuses: v.optional(about('Statuses that count as healthy.', v.pipe(list(httpStatus, 'statuses', 100), v.minLength(1, 'expected at least one status'))), [200]),
        }),
      ),
    ),
    grpc: v.optional(
      about(
        'Check with the gRPC health protocol (grpc.health.v1.Health/Check).',
        obj({ service: v.optional(about('The service name sent in the check; "" asks about the server as a whole.', str()), '') }),
      ),
    ),
    tcp: v.optional(about('Check that a TCP connection opens.', obj({}))),
    interval: v.optional(about('Time between two checks of one endpoint.', positiveDuration), '10s'),
    timeout: v.optional(about('A check that takes longer fails.', positiveDuration), '1s'),
    healthyThreshold: v.optional(about('Passed checks in a row that make an unhealthy endpoint healthy again.', int('a count', 1, 100)), 2),
    unhealthyThreshold: v.optional(about('Failed checks in a row that make an endpoint unhealthy.', int('a count', 1, 100)), 3),
  }),
  exactlyOne(['http', 'grpc', 'tcp']),
  durationOrder('timeout', 'interval'),
);

export const RETRY_ON = [
  'connect-failure',
  'refused-stream',
  'reset',
  '5xx',
  'gateway-error',
  'retriable-status-codes',
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
] as const;
export type RetryOn = (typeof RETRY_ON)[number];

export const RetryBudget = obj({
  ratio: v.optional(about('Retries allowed as a fraction of the requests within ttl (0.2: at most one retry per five requests).', v.pipe(v.number('expected a number'), v.minValue(0, 'expected a ratio >= 0'), v.maxValue(1, 'expected a ratio <= 1'))), 0.2),
  minRetriesPerSecond: v.optional(about('Retries allowed per second regardless of the ratio, so that low traffic can still retry.', int('a rate', 0, 1_000_000)), 10),
  ttl: v.optional(about('The window over which requests and retries are counted.', positiveDuration), '10s'),
});

export const RetryBackoff = v.pipe(
  obj({
    baseInterval: v.optional(about('Backoff before the first retry; it doubles for each further one, with full jitter.', positiveDuration), '25ms'),
    maxInterval: v.optional(about('Backoff before a retry at most.', positiveDuration), '250ms'),
  }),
  durationOrder('baseInterval', 'maxInterval'),
);

export const RetryPolicy = obj({
  attempts: v.optional(about('Retries after the first try (not counting it).', int('a count', 0, 10)), 2),
  perTryTimeout: v.optional(about('Timeout of each try; absent: each try may use what is left of the request timeout.', positiveDuration)),
  retryOn: v.optional(
    about(
      'Failures that are retried: connect-failure, refused-stream, reset, 5xx, gateway-error (502, 503, 504), retriable-status-codes, and the gRPC statuses cancelled, deadline-exceeded, internal, resource-exhausted, unavailable.',
      list(v.picklist(RETRY_ON, `expected one of ${RETRY_ON.join(', ')}`), 'conditions', RETRY_ON.length),
    ),
    ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'],
  ),
  retriableStatusCodes: v.optional(about('HTTP statuses retried when retryOn lists retriable-status-codes.', list(httpStatus, 'statuses', 100)), [503]),
  retryNonIdempotent: v.optional(about('Also retry methods that are not idempotent (POST, PATCH); a request body is replayed only if it was buffered whole.', bool), false),
  budget: v.optional(about('Retries in proportion to requests (Linkerd\'s retry budget), so that retries cannot multiply load during an outage.', RetryBudget), {}),
  backoff: v.optional(about('Exponential backoff between tries.', RetryBackoff), {}),
});

export const RateLimit = v.pipe(
  obj({
    requestsPerUnit: v.optional(about('Requests allowed per unit of time (with unit).', int('a rate', 1, 1_000_000_000))),
    unit: v.optional(about('The unit of requestsPerUnit.', v.picklist(['second', 'minute', 'hour'], 'expected second, minute or hour'))),
    tokens: v.optional(about('Tokens added to the bucket every fillInterval (the alternative to requestsPerUnit and unit).', int('a token count', 1, 1_000_000_000))),
    fillInterval: v.optional(about('How often tokens are added.', positiveDuration)),
    burst: v.optional(about('Size of the bucket: requests allowed at once after a quiet period; absent: requestsPerUnit, or tokens.', int('a burst', 1, 1_000_000_000))),
    perSourceIdentity: v.optional(about('One bucket per calling identity instead of one for all callers.', bool), false),
  }),
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const r = dataset.value;
    const rate = r.requestsPerUnit !== undefined || r.unit !== undefined;
    const bucket = r.tokens !== undefined || r.fillInterval !== undefined;
    if (rate && bucket) addIssue({ message: 'expected either requestsPerUnit and unit, or tokens and fillInterval, not both', path: pathOf(r, [r.tokens !== undefined ? 'tokens' : 'fillInterval']) });
    else if (rate && (r.requestsPerUnit === undefined || r.unit === undefined)) addIssue({ message: 'requestsPerUnit and unit go together', path: pathOf(r, [r.unit === undefined ? 'requestsPerUnit' : 'unit']) });
    else if (bucket && (r.tokens === undefined || r.fillInterval === undefined)) addIssue({ message: 'tokens and fillInterval go together', path: pathOf(r, [r.tokens === undefined ? 'fillInterval' : 'tokens']) });
    else if (!rate && !bucket) addIssue({ message: 'expected requestsPerUnit and unit, or tokens and fillInterval' });
  }),
);

export const Locality = obj({
  preferLocalZone: v.optional(about('Send to endpoints in the caller\'s zone (the endpoints\' zone label) while enough of them are healthy.', bool), true),
  failoverThresholdPercent: v.optional(about('Fail over to every zone when fewer than this percentage of the local zone\'s endpoints are healthy.', percent), 70),
});

export const TrafficPolicySpec = obj({
  targetRef: about('The destination service this policy applies to (for every caller).', ServiceTargetRef),
  loadBalancer: v.optional(about('How a caller picks an endpoint; absent: the mesh default.', LoadBalancer)),
  connectionPool: v.optional(about('Circuit-breaker limits of each caller towards the service; a request over a limit fails at once with 503.', ConnectionPool)),
  outlierDetection: v.optional(about('Passive health: eject endpoints that fail in a row, for a growing time; absent: off.', OutlierDetection)),
  healthCheck: v.optional(about('Active health checks of each endpoint by its callers (exactly one of http, grpc, tcp); absent: off.', HealthCheck)),
  retry: v.optional(about('Retries of failed requests; absent: no retries.', RetryPolicy)),
  timeout: v.optional(about('Time for a whole request, retries included; absent: no timeout (a route\'s timeouts take precedence).', positiveDuration)),
  rateLimit: v.optional(about('Local rate limit (token bucket) applied by each of the service\'s sidecars to inbound requests; over it: 429.', RateLimit)),
  locality: v.optional(about('Zone-aware routing.', Locality), {}),
});

export const TrafficPolicy = mycelKind('TrafficPolicy', TrafficPolicySpec);
export type TrafficPolicy = v.InferOutput<typeof TrafficPolicy>;
export type TrafficPolicySpec = v.InferOutput<typeof TrafficPolicySpec>;
export type LoadBalancer = v.InferOutput<typeof LoadBalancer>;
export type ConnectionPool = v.InferOutput<typeof ConnectionPool>;
export type OutlierDetection = v.InferOutput<typeof OutlierDetection>;
export type HealthCheck = v.InferOutput<typeof HealthCheck>;
export type RetryPolicy = v.InferOutput<typeof RetryPolicy>;
export type RateLimit = v.InferOutput<typeof RateLimit>;
export type Locality = v.InferOutput<typeof Locality>;

// ---- PeerAuthentication ----------------------------------------------------------------------------------------

export const PeerAuthentication = mycelKind(
  'PeerAuthentication',
  v.optional(
    obj({
      targetRef: v.optional(about('The service whose sidecars this applies to; absent: every service in the mesh (a service\'s own policy wins).', ServiceTargetRef)),
      mtls: v.optional(
        obj({
          mode: v.optional(about('STRICT: accept only mutual TLS from mesh identities; PERMISSIVE: also accept plain text (for migration).', v.picklist(['STRICT', 'PERMISSIVE'], 'expected STRICT or PERMISSIVE')), 'STRICT'),
        }),
        {},
      ),
    }),
    {},
  ),
);
export type PeerAuthentication = v.InferOutput<typeof PeerAuthentication>;

// ---- AuthorizationPolicy ---------------------------------------------------------------------------------------
// Istio's semantics: a request is denied if any DENY policy of its service matches it; otherwise, if the service has no
// ALLOW policy it is allowed; otherwise it is allowed only if an ALLOW policy matches. A policy matches when one of its
// rules matches; a rule matches when its from, to and when all match (an absent one matches anything); in a list of
// sources or operations one entry must match; within one entry every field given must match; within one field one
// value must. So an ALLOW policy with no rules allows nothing (and denies every other request), `rules: [{}]` allows
// everything, and a DENY policy with no rules denies nothing. A policy that cannot be evaluated denies (fail closed).

const bounded = <S extends v.GenericSchema>(item: S, what: string) => v.pipe(list(item, what, 256), v.minLength(1, 'expected a non-empty list; leave the field out to match any'));

const PRINCIPAL = /^(\*|\*[^*\s]+|spiffe:\/\/[^*\s]+\*?)$/;
const principal = v.pipe(str('a SPIFFE ID'), v.regex(PRINCIPAL, 'expected a SPIFFE ID such as spiffe://mycel.local/ns/default/svc/web, with an optional "*" at its start or end'));
const SERVICE_REF = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?\/)?[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const serviceRef = v.pipe(str('a service name'), v.maxLength(127, 'expected at most 127 characters'), v.regex(SERVICE_REF, 'expected a service name, or namespace/name'));
const PATH_PATTERN = /^(\*|\*[^*\s]+|\/[^*\s]*\*?)$/;
const pathPattern = v.pipe(
  str('a path'),
  v.regex(PATH_PATTERN, 'expected a path: exact "/a/b", prefix "/a/*", suffix "*.json", or "*"'),
  v.check(isCanonicalPattern, 'expected a path in normalised form, as requests are compared: no "//", "." or ".." segments, ";", "?", "#", backslash, %2F or %5C, escapes only for reserved characters (upper-case hex)'),
);

/** A request path is normalised before it is compared (security/request-path.ts); a pattern in another form never matches. */
function isCanonicalPattern(p: string): boolean {
  if (!p.startsWith('/')) return !/[?#;\\]/.test(p);
  const body = p.endsWith('*') ? p.slice(0, -1) : p;
  if (body.includes('?')) return false;
  const n = normalizeRequestPath(body);
  // "/a/*" is the prefix "/a/": its body ends in "/", which normalisation keeps.
  return n === body;
}
const method = v.pipe(str('an HTTP method'), v.regex(/^[A-Z]+$/, 'expected an HTTP method in capitals, such as GET'));

const atLeastOne = <T extends object>(keys: readonly (keyof T & string)[]) =>
  v.check<T, string>((o) => keys.some((k) => o[k] !== undefined), `expected at least one of ${keys.join(', ')}`);

export const AuthorizationSource = v.pipe(
  obj({
    principals: v.optional(about('Caller SPIFFE IDs (exact, or with "*" at the start or end); one must match.', bounded(principal, 'principals'))),
    notPrincipals: v.optional(about('Caller SPIFFE IDs that must not match.', bounded(principal, 'principals'))),
    namespaces: v.optional(about('Caller namespaces; one must match.', bounded(name, 'namespaces'))),
    services: v.optional(about('Caller services ("name" in the policy\'s namespace, or "namespace/name"); one must match.', bounded(serviceRef, 'services'))),
  }),
  atLeastOne(['principals', 'notPrincipals', 'namespaces', 'services']),
);

export const AuthorizationOperation = v.pipe(
  obj({
    methods: v.optional(about('HTTP methods (gRPC calls are POST); one must match.', bounded(method, 'methods'))),
    notMethods: v.optional(about('HTTP methods that must not match.', bounded(method, 'methods'))),
    paths: v.optional(about('Request paths, compared with the normalised path without the query: exact "/a", prefix "/a/*", suffix "*.json", or "*" (gRPC: "/package.Service/Method"); one must match.', bounded(pathPattern, 'paths'))),
    notPaths: v.optional(about('Request paths that must not match (same patterns as paths).', bounded(pathPattern, 'paths'))),
    ignorePathCase: v.optional(about('Compare paths and notPaths ignoring the case of ASCII letters, for an app that treats /ADMIN as /admin; absent: case-sensitive.', bool)),
    ports: v.optional(about('Service ports the request arrives on; one must match.', bounded(port, 'ports'))),
  }),
  atLeastOne(['methods', 'notMethods', 'paths', 'notPaths', 'ports']),
);

export const AuthorizationCondition = v.pipe(
  obj({
    header: about('A request header, by name (case-insensitive).', headerName),
    values: v.optional(about('The header must have one of these values ("*" at the start or end is a wildcard).', bounded(str(), 'values'))),
    notValues: v.optional(about('The header must have none of these values (an absent header has none).', bounded(str(), 'values'))),
  }),
  atLeastOne(['values', 'notValues']),
);

export const AuthorizationRule = obj({
  from: v.optional(about('Sources; one must match. Absent: any caller.', bounded(obj({ source: about('A set of callers.', AuthorizationSource) }), 'sources'))),
  to: v.optional(about('Operations; one must match. Absent: any request.', bounded(obj({ operation: about('A set of requests.', AuthorizationOperation) }), 'operations'))),
  when: v.optional(about('Conditions; all must hold. Absent: none.', bounded(AuthorizationCondition, 'conditions'))),
});

export const AuthorizationPolicySpec = obj({
  targetRef: about('The service whose sidecars enforce this policy on inbound requests.', ServiceTargetRef),
  action: v.optional(about('ALLOW: matching requests are allowed and, once a service has an ALLOW policy, all others denied; DENY: matching requests are denied.', v.picklist(['ALLOW', 'DENY'], 'expected ALLOW or DENY')), 'ALLOW'),
  rules: v.optional(about('The policy matches a request when one rule does. No rules: ALLOW allows nothing, DENY denies nothing.', list(AuthorizationRule, 'rules', 256)), []),
});

export const AuthorizationPolicy = mycelKind('AuthorizationPolicy', AuthorizationPolicySpec);
export type AuthorizationPolicy = v.InferOutput<typeof AuthorizationPolicy>;
export type AuthorizationRule = v.InferOutput<typeof AuthorizationRule>;
