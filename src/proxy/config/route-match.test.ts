// Table-driven tests of route matching and precedence, with the request/expected-backend cases of the Gateway API
// conformance suite (httproute-*matching*, httproute-path-match-order, grpcroute-*-matching) rewritten for a mesh:
// the routes attach to Service "echo" and send to Services v1, v2, v3; "404" means no rule matched.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseResources } from '../../api/v1alpha1/load.js';
import { compilePlan } from './plan.js';
import { headerValue, hostOf, queryValue } from './route-match.js';

const SERVICES = ['echo', 'v1', 'v2', 'v3']
  .map((n) => `apiVersion: mycel.dev/v1alpha1\nkind: Service\nmetadata: { name: ${n} }\nspec: { ports: [ { port: 80 }, { port: 8080 } ], hosts: [ ${n}.example.com ] }\n`)
  .join('---\n');

interface Req {
  path: string;
  method?: string;
  headers?: Record<string, string>;
  host?: string;
  port?: number;
  grpc?: boolean;
}

/** Compiles services plus `routes` and returns where each request goes: a backend name, or "404". */
function router(routes: string, selfNamespace = 'default'): (r: Req) => string {
  const parsed = parseResources(SERVICES + '---\n' + routes + (selfNamespace !== 'default' ? `---\napiVersion: mycel.dev/v1alpha1\nkind: Service\nmetadata: { name: client, namespace: ${selfNamespace} }\nspec: { ports: [ { port: 80 } ] }\n` : ''), 'routes.yaml');
  assert.ok(parsed.ok, JSON.stringify(parsed));
  const plan = compilePlan(parsed.resources.map((x) => x.resource), selfNamespace === 'default' ? 'echo' : 'client', 1);
  const echo = plan.lookupHost('echo')!;
  return (r) => {
    const table = echo.routes.get(r.port ?? 80)?.candidates;
    assert.ok(table, 'the port has routes');
    const headers = Object.entries(r.headers ?? {}).flatMap(([k, v]) => [k.toLowerCase(), v]);
    const c = r.grpc ? table.matchGrpc(r.host ?? 'echo', r.path, headers) : table.matchHttp(r.method ?? 'GET', r.host ?? 'echo', r.path, headers);
    if (c === null) return '404';
    const b = c.rule.backends.pick(0);
    return b?.target?.name ?? 'invalid';
  };
}

const route = (name: string, rules: string, extra = '') => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: ${name}${extra} }
spec:
  parentRefs: [ { name: echo } ]
  rules:
${rules}
`;

type Case = [Req, string];

function run(routes: string, cases: Case[], self?: string): void {
  const go = router(routes, self);
  for (const [req, want] of cases) {
    test(`${req.method ?? (req.grpc ? 'gRPC' : 'GET')} ${req.host ? req.host : ''}${req.path}${req.headers ? ' ' + JSON.stringify(req.headers) : ''} -> ${want}`, () => {
      assert.equal(go(req), want);
    });
  }
}

describe('conformance: httproute-matching (path prefix or header, across rules)', () => {
  run(
    route('matching', `  - matches: [ { path: { type: PathPrefix, value: / } }, { headers: [ { name: version, value: one } ] } ]
    backendRefs: [ { name: v1 } ]
  - matches: [ { path: { type: PathPrefix, value: /v2 } }, { headers: [ { name: version, value: two } ] } ]
    backendRefs: [ { name: v2 } ]`),
    [
      [{ path: '/' }, 'v1'],
      [{ path: '/example' }, 'v1'],
      [{ path: '/', headers: { Version: 'one' } }, 'v1'],
      [{ path: '/v2' }, 'v2'],
      [{ path: '/v2/example' }, 'v2'],
      [{ path: '/', headers: { Version: 'two' } }, 'v2'],
      [{ path: '/v2/' }, 'v2'],
      [{ path: '/v2example' }, 'v1'],
      [{ path: '/foo/v2/example' }, 'v1'],
    ],
  );
});

describe('conformance: httproute-path-match-order (Exact over prefix, longest prefix first)', () => {
  run(
    route('order', `  - { matches: [ { path: { type: Exact, value: /match } } ], backendRefs: [ { name: v1 } ] }
  - { matches: [ { path: { type: Exact, value: /match/exact } } ], backendRefs: [ { name: v2 } ] }
  - { matches: [ { path: { type: Exact, value: /match/exact/one } } ], backendRefs: [ { name: v3 } ] }
  - { matches: [ { path: { type: PathPrefix, value: /match/ } } ], backendRefs: [ { name: v3 } ] }
  - { matches: [ { path: { type: PathPrefix, value: /match/prefix/ } } ], backendRefs: [ { name: v1 } ] }
  - { matches: [ { path: { type: PathPrefix, value: /match/prefix/one } } ], backendRefs: [ { name: v2 } ] }`),
    [
      [{ path: '/match/exact/one' }, 'v3'],
      [{ path: '/match/exact' }, 'v2'],
      [{ path: '/match' }, 'v1'],
      [{ path: '/match/prefix/one/any' }, 'v2'],
      [{ path: '/match/prefix/any' }, 'v1'],
      [{ path: '/match/any' }, 'v3'],
    ],
  );
});

describe('conformance: httproute-exact-path-matching', () => {
  run(
    route('exact', `  - { matches: [ { path: { type: Exact, value: /one } } ], backendRefs: [ { name: v1 } ] }
  - { matches: [ { path: { type: Exact, value: /two } } ], backendRefs: [ { name: v2 } ] }`),
    [
      [{ path: '/one' }, 'v1'],
      [{ path: '/two' }, 'v2'],
      [{ path: '/' }, '404'],
      [{ path: '/one/example' }, '404'],
      [{ path: '/two/' }, '404'],
      [{ path: '/Two' }, '404'],
      [{ path: '/one?x=1' }, 'v1'],
    ],
  );
});

describe('conformance: httproute-header-matching (AND within a match, OR across matches, most headers first)', () => {
  run(
    route('headers', `  - { matches: [ { headers: [ { name: version, value: one } ] } ], backendRefs: [ { name: v1 } ] }
  - { matches: [ { headers: [ { name: version, value: two } ] } ], backendRefs: [ { name: v2 } ] }
  - { matches: [ { headers: [ { name: version, value: two }, { name: color, value: orange } ] } ], backendRefs: [ { name: v1 } ] }
  - { matches: [ { headers: [ { name: color, value: blue } ] }, { headers: [ { name: color, value: green } ] } ], backendRefs: [ { name: v1 } ] }
  - { matches: [ { headers: [ { name: color, value: red } ] }, { headers: [ { name: color, value: yellow } ] } ], backendRefs: [ { name: v2 } ] }`),
    [
      [{ path: '/', headers: { Version: 'one' } }, 'v1'],
      [{ path: '/', headers: { Version: 'two' } }, 'v2'],
      [{ path: '/', headers: { Version: 'two', Color: 'orange' } }, 'v1'],
      [{ path: '/', headers: { Version: 'two', Color: 'blue' } }, 'v2'],
      [{ path: '/', headers: { Color: 'orange' } }, '404'],
      [{ path: '/', headers: { 'Some-Other-Header': 'one' } }, '404'],
      [{ path: '/', headers: { Color: 'blue' } }, 'v1'],
      [{ path: '/', headers: { Color: 'green' } }, 'v1'],
      [{ path: '/', headers: { Color: 'red' } }, 'v2'],
      [{ path: '/', headers: { Color: 'yellow' } }, 'v2'],
      [{ path: '/', headers: { Color: 'purple' } }, '404'],
    ],
  );
});

describe('conformance: httproute-query-param-matching', () => {
  run(
    route('query', `  - { matches: [ { queryParams: [ { name: animal, value: whale } ] } ], backendRefs: [ { name: v1 } ] }
  - { matches: [ { queryParams: [ { name: animal, value: dolphin } ] } ], backendRefs: [ { name: v2 } ] }
  - matches:
    - { queryParams: [ { name: animal, value: dolphin }, { name: color, value: blue } ] }
    - { queryParams: [ { name: ANIMAL, value: Whale } ] }
    backendRefs: [ { name: v3 } ]
  - { matches: [ { path: { type: PathPrefix, value: /path1 }, queryParams: [ { name: animal, value: whale } ] } ], backendRefs: [ { name: v1 } ] }
  - { matches: [ { headers: [ { name: version, value: one } ], queryParams: [ { name: animal, value: whale } ] } ], backendRefs: [ { name: v2 } ] }
  - { matches: [ { path: { type: PathPrefix, value: /path2 }, headers: [ { name: version, value: two } ], queryParams: [ { name: animal, value: whale } ] } ], backendRefs: [ { name: v3 } ] }
  - matches:
    - { path: { type: PathPrefix, value: /path3 }, queryParams: [ { name: animal, value: shark } ] }
    - { path: { type: PathPrefix, value: /path4 }, headers: [ { name: version, value: three } ], queryParams: [ { name: animal, value: kraken } ] }
    backendRefs: [ { name: v1 } ]
  - { matches: [ { path: { type: PathPrefix, value: /path5 } } ], backendRefs: [ { name: v1 } ] }
  - { matches: [ { queryParams: [ { name: animal, value: hydra } ] } ], backendRefs: [ { name: v2 } ] }
  - { matches: [ { headers: [ { name: version, value: four } ] } ], backendRefs: [ { name: v3 } ] }`),
    [
      [{ path: '/?animal=whale' }, 'v1'],
      [{ path: '/?animal=dolphin' }, 'v2'],
      [{ path: '/?animal=dolphin&color=blue' }, 'v3'],
      [{ path: '/?ANIMAL=Whale' }, 'v3'],
      [{ path: '/?animal=whale&otherparam=irrelevant' }, 'v1'],
      [{ path: '/?animal=dolphin&color=yellow' }, 'v2'],
      [{ path: '/?color=blue' }, '404'],
      [{ path: '/?animal=dog' }, '404'],
      [{ path: '/?animal=whaledolphin' }, '404'],
      [{ path: '/' }, '404'],
      [{ path: '/path1?animal=whale' }, 'v1'],
      [{ path: '/?animal=whale', headers: { version: 'one' } }, 'v2'],
      [{ path: '/path2?animal=whale', headers: { version: 'two' } }, 'v3'],
      [{ path: '/path3?animal=shark' }, 'v1'],
      [{ path: '/path4?animal=kraken', headers: { version: 'three' } }, 'v1'],
      [{ path: '/?animal=shark' }, '404'],
      [{ path: '/path4?animal=kraken' }, '404'],
      [{ path: '/path5?animal=hydra' }, 'v1'],
      [{ path: '/?animal=hydra', headers: { version: 'four' } }, 'v3'],
      // Mycel: values are compared decoded, and the first of a repeated parameter counts.
      [{ path: '/?animal=wh%61le' }, 'v1'],
      [{ path: '/?animal=dolphin&animal=whale' }, 'v2'],
    ],
  );
});

describe('conformance: httproute-method-matching', () => {
  run(
    route('method', `  - { matches: [ { method: POST } ], backendRefs: [ { name: v1 } ] }
  - { matches: [ { method: GET } ], backendRefs: [ { name: v2 } ] }
  - { matches: [ { path: { type: PathPrefix, value: /path1 }, method: GET } ], backendRefs: [ { name: v1 } ] }
  - { matches: [ { headers: [ { name: version, value: one } ], method: PUT } ], backendRefs: [ { name: v2 } ] }
  - { matches: [ { path: { type: PathPrefix, value: /path2 }, headers: [ { name: version, value: two } ], method: POST } ], backendRefs: [ { name: v3 } ] }
  - matches:
    - { path: { type: PathPrefix, value: /path3 }, method: PATCH }
    - { path: { type: PathPrefix, value: /path4 }, headers: [ { name: version, value: three } ], method: DELETE }
    backendRefs: [ { name: v1 } ]
  - { matches: [ { path: { type: PathPrefix, value: /path5 } } ], backendRefs: [ { name: v1 } ] }
  - { matches: [ { method: PATCH } ], backendRefs: [ { name: v2 } ] }
  - { matches: [ { headers: [ { name: version, value: four } ] } ], backendRefs: [ { name: v3 } ] }`),
    [
      [{ method: 'POST', path: '/' }, 'v1'],
      [{ method: 'GET', path: '/' }, 'v2'],
      [{ method: 'HEAD', path: '/' }, '404'],
      [{ method: 'GET', path: '/path1' }, 'v1'],
      [{ method: 'PUT', path: '/', headers: { version: 'one' } }, 'v2'],
      [{ method: 'POST', path: '/path2', headers: { version: 'two' } }, 'v3'],
      [{ method: 'PATCH', path: '/path3' }, 'v1'],
      [{ method: 'DELETE', path: '/path4', headers: { version: 'three' } }, 'v1'],
      [{ method: 'PUT', path: '/' }, '404'],
      [{ method: 'DELETE', path: '/path4' }, '404'],
      [{ method: 'PATCH', path: '/path5' }, 'v1'],
      [{ method: 'PATCH', path: '/', headers: { version: 'four' } }, 'v2'],
    ],
  );
});

describe('conformance: httproute-matching-across-routes (host names, then matches across two routes)', () => {
  run(
    route('matching-part1', `  - matches: [ { path: { type: PathPrefix, value: / } }, { headers: [ { name: version, value: one } ] } ]
    backendRefs: [ { name: v1 } ]`).replace('spec:\n', 'spec:\n  hostnames: [ example.com, example.net ]\n') +
      '---\n' +
      route('matching-part2', `  - matches: [ { path: { type: PathPrefix, value: /v2 } }, { headers: [ { name: version, value: two } ] } ]
    backendRefs: [ { name: v2 } ]`).replace('spec:\n', 'spec:\n  hostnames: [ example.com ]\n'),
    [
      [{ host: 'example.com', path: '/' }, 'v1'],
      [{ host: 'example.com', path: '/example' }, 'v1'],
      [{ host: 'example.net', path: '/example' }, 'v1'],
      [{ host: 'example.com', path: '/example', headers: { Version: 'one' } }, 'v1'],
      [{ host: 'example.com', path: '/v2' }, 'v2'],
      [{ host: 'example.net', path: '/v2' }, 'v1'],
      [{ host: 'example.com', path: '/v2/example' }, 'v2'],
      [{ host: 'example.com', path: '/', headers: { Version: 'two' } }, 'v2'],
      [{ host: 'EXAMPLE.com:8080', path: '/v2' }, 'v2'],
      [{ host: 'other.org', path: '/v2' }, '404'],
    ],
  );
});

describe('host names: an exact name beats a wildcard beats none, before any path rule', () => {
  run(
    route('any-host', '  - { matches: [ { path: { type: Exact, value: /x } } ], backendRefs: [ { name: v1 } ] }') +
      '---\n' +
      route('wildcard', '  - backendRefs: [ { name: v2 } ]').replace('spec:\n', 'spec:\n  hostnames: [ "*.example.com" ]\n') +
      '---\n' +
      route('exact', '  - backendRefs: [ { name: v3 } ]').replace('spec:\n', 'spec:\n  hostnames: [ a.example.com ]\n'),
    [
      [{ host: 'a.example.com', path: '/x' }, 'v3'],
      [{ host: 'b.example.com', path: '/x' }, 'v2'],
      [{ host: 'b.c.example.com', path: '/x' }, 'v2'],
      [{ host: 'example.com', path: '/x' }, 'v1'],
      [{ host: 'echo', path: '/x' }, 'v1'],
      [{ host: 'echo', path: '/y' }, '404'],
    ],
  );
});

describe('Mycel precedence choices: regular expressions above prefixes; ties go to the oldest route, then by name, then the first rule', () => {
  run(
    route('regex', `  - { matches: [ { path: { type: RegularExpression, value: "/users/[0-9]+" } } ], backendRefs: [ { name: v1 } ] }
  - { matches: [ { headers: [ { name: x-a, type: RegularExpression, value: "v[0-9]" } ] } ], backendRefs: [ { name: v2 } ] }
  - { matches: [ { path: { type: PathPrefix, value: /users/admin } } ], backendRefs: [ { name: v3 } ] }
  - { matches: [ { path: { type: PathPrefix, value: /users/admin } } ], backendRefs: [ { name: v1 } ] }
  - { matches: [ { path: { type: PathPrefix, value: /p/q } } ], backendRefs: [ { name: v1 } ] }
  - { matches: [ { path: { type: Exact, value: /p/q } } ], backendRefs: [ { name: v2 } ] }
  - { matches: [ { path: { type: PathPrefix, value: /r/long/prefix } } ], backendRefs: [ { name: v1 } ] }
  - { matches: [ { path: { type: RegularExpression, value: "/r.*" } } ], backendRefs: [ { name: v3 } ] }`) +
      '---\n' +
      route('b-newer', "  - { matches: [ { path: { type: Exact, value: /tie } } ], backendRefs: [ { name: v3 } ] }", ', creationTimestamp: "2024-05-02T00:00:00Z"') +
      '---\n' +
      route('c-older', "  - { matches: [ { path: { type: Exact, value: /tie } } ], backendRefs: [ { name: v2 } ] }", ', creationTimestamp: "2024-05-01T00:00:00Z"') +
      '---\n' +
      route('a-no-time', "  - { matches: [ { path: { type: Exact, value: /tie } } ], backendRefs: [ { name: v1 } ] }") +
      '---\n' +
      route('z-name', "  - { matches: [ { path: { type: Exact, value: /name } } ], backendRefs: [ { name: v3 } ] }") +
      '---\n' +
      route('y-name', "  - { matches: [ { path: { type: Exact, value: /name } } ], backendRefs: [ { name: v2 } ] }"),
    [
      [{ path: '/users/42' }, 'v1'],
      [{ path: '/users/42/x' }, '404'],
      [{ path: '/users/42/x', headers: { 'x-a': 'v7' } }, 'v2'],
      [{ path: '/users/admin', headers: { 'x-a': 'v7x' } }, 'v3'],
      [{ path: '/p/q' }, 'v2'],
      [{ path: '/p/q/z' }, 'v1'],
      [{ path: '/r/long/prefix' }, 'v3'],
      [{ path: '/tie' }, 'v2'],
      [{ path: '/name' }, 'v2'],
    ],
  );
});

describe('parentRef port: a route for one port leaves the other port alone', () => {
  const routes = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: only-8080 }
spec:
  parentRefs: [ { name: echo, port: 8080 } ]
  rules: [ { backendRefs: [ { name: v2 } ] } ]
`;
  const parsed = parseResources(SERVICES + '---\n' + routes, 'r.yaml');
  assert.ok(parsed.ok);
  const echo = compilePlan(parsed.resources.map((x) => x.resource), 'echo', 1).lookupHost('echo')!;
  test('port 8080 has the route, port 80 has none', () => {
    assert.ok(echo.routes.get(8080)?.candidates);
    assert.equal(echo.routes.get(80), undefined);
  });
});

describe('GAMMA consumer routes: a route in the caller\'s namespace replaces the producer\'s routes for that caller', () => {
  const producer = route('producer', '  - backendRefs: [ { name: v1 } ]');
  const consumer = route('consumer', '  - backendRefs: [ { name: v2, namespace: default } ]').replace('metadata: { name: consumer', 'metadata: { namespace: team, name: consumer').replace('{ name: echo }', '{ name: echo, namespace: default }');
  describe('a caller in namespace team', () => run(producer + '---\n' + consumer, [[{ path: '/' }, 'v2']], 'team'));
  describe('a caller in the parent\'s namespace', () => run(producer + '---\n' + consumer, [[{ path: '/' }, 'v1']]));
  describe('a caller in a third namespace', () => run(producer + '---\n' + consumer, [[{ path: '/' }, 'v1']], 'other'));
});

const grpcRoute = (rules: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: grpc }
spec:
  parentRefs: [ { name: echo } ]
  rules:
${rules}
`;

describe('conformance: grpcroute-exact-method-matching', () => {
  run(
    grpcRoute(`  - { matches: [ { method: { service: conformance.Echo, method: Echo } } ], backendRefs: [ { name: v1 } ] }
  - { matches: [ { method: { service: conformance.Echo, method: EchoTwo } } ], backendRefs: [ { name: v2 } ] }`),
    [
      [{ grpc: true, path: '/conformance.Echo/Echo' }, 'v1'],
      [{ grpc: true, path: '/conformance.Echo/EchoTwo' }, 'v2'],
      [{ grpc: true, path: '/conformance.Echo/EchoThree' }, '404'],
    ],
  );
});

describe('conformance: grpcroute-header-matching', () => {
  run(
    grpcRoute(`  - { matches: [ { headers: [ { name: version, value: one } ] } ], backendRefs: [ { name: v1 } ] }
  - { matches: [ { headers: [ { name: version, value: two } ] } ], backendRefs: [ { name: v2 } ] }
  - { matches: [ { headers: [ { name: version, value: two }, { name: color, value: orange } ] } ], backendRefs: [ { name: v1 } ] }
  - { matches: [ { headers: [ { name: color, value: blue } ] }, { headers: [ { name: color, value: green } ] } ], backendRefs: [ { name: v1 } ] }
  - { matches: [ { headers: [ { name: color, value: red } ] }, { headers: [ { name: color, value: yellow } ] } ], backendRefs: [ { name: v2 } ] }`),
    [
      [{ grpc: true, path: '/conformance.Echo/Echo', headers: { Version: 'one' } }, 'v1'],
      [{ grpc: true, path: '/conformance.Echo/Echo', headers: { Version: 'two' } }, 'v2'],
      [{ grpc: true, path: '/conformance.Echo/Echo', headers: { Version: 'two', Color: 'orange' } }, 'v1'],
      [{ grpc: true, path: '/conformance.Echo/Echo', headers: { Version: 'two', Color: 'blue' } }, 'v2'],
      [{ grpc: true, path: '/conformance.Echo/Echo', headers: { Color: 'orange' } }, '404'],
      [{ grpc: true, path: '/conformance.Echo/Echo', headers: { 'Some-Other-Header': 'one' } }, '404'],
      [{ grpc: true, path: '/conformance.Echo/Echo', headers: { Color: 'blue' } }, 'v1'],
      [{ grpc: true, path: '/conformance.Echo/Echo', headers: { Color: 'green' } }, 'v1'],
      [{ grpc: true, path: '/conformance.Echo/Echo', headers: { Color: 'red' } }, 'v2'],
      [{ grpc: true, path: '/conformance.Echo/Echo', headers: { Color: 'yellow' } }, 'v2'],
      [{ grpc: true, path: '/conformance.Echo/Echo', headers: { Color: 'purple' } }, '404'],
    ],
  );
});

describe('GRPCRoute precedence: longer service match, then longer method match, then more headers, then rule order', () => {
  run(
    grpcRoute(`  - { backendRefs: [ { name: v3 } ] }
  - { matches: [ { method: { method: Get } } ], backendRefs: [ { name: v1 } ] }
  - { matches: [ { method: { service: shop.Cart } } ], backendRefs: [ { name: v2 } ] }
  - { matches: [ { method: { service: shop.Cart, method: Get } } ], backendRefs: [ { name: v1 } ] }
  - { matches: [ { method: { type: RegularExpression, service: "shop\\\\..*", method: "List.*" } } ], backendRefs: [ { name: v3 } ] }
  - { matches: [ { method: { service: shop.Cart }, headers: [ { name: x-beta, value: "1" } ] } ], backendRefs: [ { name: v3 } ] }`),
    [
      [{ grpc: true, path: '/shop.Cart/Get' }, 'v1'],
      [{ grpc: true, path: '/shop.Cart/Put' }, 'v2'],
      [{ grpc: true, path: '/shop.Cart/Put', headers: { 'x-beta': '1' } }, 'v3'],
      [{ grpc: true, path: '/other.Svc/Get' }, 'v1'],
      [{ grpc: true, path: '/other.Svc/Put' }, 'v3'],
      [{ grpc: true, path: '/shop.Orders/ListAll' }, 'v3'],
    ],
  );
});

test('helpers: header values join repeated fields, query values decode, hosts lose port and case', () => {
  assert.equal(headerValue(['a', '1', 'b', '2', 'a', '3'], 'a'), '1,3');
  assert.equal(headerValue(['a', '1'], 'c'), null);
  const p = '/x?a=1&b=two+words&c&d=%2F&a=2';
  const q = p.indexOf('?');
  assert.equal(queryValue(p, q, 'a'), '1');
  assert.equal(queryValue(p, q, 'b'), 'two words');
  assert.equal(queryValue(p, q, 'c'), '');
  assert.equal(queryValue(p, q, 'd'), '/');
  assert.equal(queryValue(p, q, 'e'), null);
  assert.equal(queryValue('/x', -1, 'a'), null);
  assert.equal(queryValue('/x?bad=%zz', 2, 'bad'), '%zz');
  assert.equal(hostOf('API.Example.com:8080'), 'api.example.com');
  assert.equal(hostOf('api.'), 'api');
  assert.equal(hostOf('[::1]:80'), '[::1]');
});

describe('a large table (indexed by first path segment) answers exactly as a scan of every candidate', () => {
  // 60 rules across shared and distinct first segments, exact and prefix paths, a regex and the "/" catch-all, some
  // with header conditions: the index must never change which rule wins.
  const rules: string[] = [];
  for (let i = 0; i < 20; i++) {
    rules.push(`  - matches: [ { path: { type: PathPrefix, value: /s${i % 7}/p${i} } } ]\n    backendRefs: [ { name: v${(i % 3) + 1} } ]`);
    rules.push(`  - matches: [ { path: { type: Exact, value: /s${i % 5}/e${i} }, headers: [ { name: x-k, value: '${i % 2}' } ] } ]\n    backendRefs: [ { name: v${((i + 1) % 3) + 1} } ]`);
    rules.push(`  - matches: [ { path: { type: PathPrefix, value: /t${i} } } ]\n    backendRefs: [ { name: v${((i + 2) % 3) + 1} } ]`);
  }
  rules.push(`  - matches: [ { path: { type: RegularExpression, value: '/s[0-9]/p1[0-9]+/deep' } } ]\n    backendRefs: [ { name: v3 } ]`);
  rules.push(`  - matches: [ { path: { type: Exact, value: / } } ]\n    backendRefs: [ { name: v2 } ]`);
  rules.push(`  - matches: [ { path: { type: PathPrefix, value: /s3 }, method: POST } ]\n    backendRefs: [ { name: v1 } ]`);
  // A route holds at most 16 rules (Gateway API): spread them over several routes.
  const routes: string[] = [];
  for (let i = 0; i < rules.length; i += 8) routes.push(route(`big-${String(i).padStart(2, '0')}`, rules.slice(i, i + 8).join('\n')));
  const parsed = parseResources(SERVICES + '---\n' + routes.join('---\n'), 'routes.yaml');
  assert.ok(parsed.ok, JSON.stringify(parsed));
  const plan = compilePlan(parsed.resources.map((x) => x.resource), 'echo', 1);
  const table = plan.lookupHost('echo')!.routes.get(80)!.candidates!;
  const scan = (method: string, path: string, headers: string[]) => {
    const q = path.indexOf('?');
    const len = q === -1 ? path.length : q;
    return table.http.find((c) => c.match.test(method, path, len, headers)) ?? null;
  };
  test('every probe path gets the same candidate', () => {
    const paths = ['/', '/?a=1', '/s0', '/s3', '/s3/p3', '/s3/p10/deep', '/s1/p15/deep', '/s0/e0', '/s0/e5', '/t1', '/t12/x', '/t', '/t1x', '/s1/p1x', '/nowhere', 'http://echo/s0/e0', '/s4/e9?x=1', '/s6/p13/a/b'];
    let compared = 0;
    for (const path of paths) for (const method of ['GET', 'POST']) for (const headers of [[], ['x-k', '0'], ['x-k', '1']]) {
      assert.equal(table.matchHttp(method, 'echo', path, headers), scan(method, path, headers), `${method} ${path} ${headers.join(':')}`);
      compared++;
    }
    assert.equal(compared, paths.length * 6);
  });
});
