// Outbound endpoint choice for a resolved service, or for the backend (service or subset) a route chose: round robin
// over its endpoints for now (the traffic issue brings least-request, EWMA and ring hash, health and outlier ejection).

import { MycelError } from '../../core/errors.js';
import type { HttpExchange } from '../stack/exchange.js';
import type { HttpLayer, HttpService } from '../stack/service.js';

class Balance implements HttpService {
  constructor(private readonly inner: HttpService) {}

  call(ex: HttpExchange): void {
    const svc = ex.service;
    // A routed request goes to the endpoints of its backend (a subset, perhaps); otherwise to all of the service's.
    const backend = ex.backend;
    const ep = backend !== null ? backend.pickEndpoint() : svc?.pickEndpoint();
    if (svc === null || ep === undefined) {
      ex.fail(new MycelError('no-endpoints', `${backend !== null && backend.subset !== null ? `subset ${backend.name}` : `service ${svc?.name ?? '?'}`} has no endpoints`));
      return;
    }
    ex.target = ep;
    ex.endpoint = ep.key;
    this.inner.call(ex);
  }
}

export const balanceLayer = (): HttpLayer => (inner) => new Balance(inner);
