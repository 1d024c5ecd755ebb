// Inbound authorization: the AuthorizationPolicies of the sidecar's own service (compiled with each config) decide
// every request from the verified peer identity, method, normalised path, port and headers. A denied request is
// answered 403 (gRPC PERMISSION_DENIED) with `x-mycel-error: denied-by <namespace/policy>`; nothing reaches the app.

import { MycelError } from '../../core/errors.js';
import type { AuthzRequest } from '../../security/authorization.js';
import { splitAuthority } from '../config/plan.js';
import type { PlanHolder } from '../outbound/discover.js';
import type { HttpExchange } from '../stack/exchange.js';
import type { HeaderList } from '../stack/http-types.js';
import type { HttpLayer, HttpService } from '../stack/service.js';

/** One request's facts, reused for every request (decide() is synchronous), so that deciding allocates nothing. */
class Facts implements AuthzRequest {
  principal: string | null = null;
  method: string | null = null;
  path: string | null = null;
  pathEnd = 0;
  port = 0;
  headers: HeaderList = [];
}

class Authorize implements HttpService {
  private readonly facts = new Facts();

  constructor(
    private readonly inner: HttpService,
    private readonly plans: PlanHolder,
    private readonly self: string,
  ) {}

  call(ex: HttpExchange): void {
    const plan = this.plans.current;
    const authz = plan.authz;
    if (authz.empty) {
      this.inner.call(ex);
      return;
    }
    const f = this.facts;
    f.principal = ex.peerIdentity;
    f.method = ex.method;
    f.path = ex.path;
    const q = ex.path.indexOf('?');
    f.pathEnd = q === -1 ? ex.path.length : q;
    f.port = authz.usesPorts ? servicePort(plan.self, ex.authority) : 0;
    f.headers = ex.headers;
    const deniedBy = authz.decide(f);
    f.headers = EMPTY;
    if (deniedBy === null) {
      this.inner.call(ex);
      return;
    }
    ex.destination = this.self;
    const who = ex.peerIdentity ?? 'a caller without a mesh identity';
    ex.fail(new MycelError('denied-by', `${who} may not ${ex.method} ${ex.path.slice(0, f.pathEnd)} on ${this.self}`, { subject: deniedBy }));
  }
}

const EMPTY: HeaderList = [];

/** The port of the service a request or tunnel is for: the authority's port if the service has it, else its default. */
export function servicePort(self: { portFor(port: number | undefined): { port: number } | undefined } | undefined, authority: string | null): number {
  const asked = authority === null ? undefined : splitAuthority(authority)?.port;
  return self?.portFor(asked)?.port ?? self?.portFor(undefined)?.port ?? 0;
}

export function authorizeLayer(plans: PlanHolder, self: string): HttpLayer {
  return (inner) => new Authorize(inner, plans, self);
}
