// Outbound endpoint choice for a resolved service: round robin over its endpoints for now (the traffic issue brings
// least-request, EWMA and ring hash with health and outlier ejection).

import { MycelError } from '../../core/errors.js';
import type { HttpExchange } from '../stack/exchange.js';
import type { HttpLayer, HttpService } from '../stack/service.js';

class Balance implements HttpService {
  constructor(private readonly inner: HttpService) {}

  call(ex: HttpExchange): void {
    const svc = ex.service;
    const ep = svc?.pickEndpoint();
    if (svc === null || ep === undefined) {
      ex.fail(new MycelError('no-endpoints', `service ${svc?.name ?? '?'} has no endpoints`));
      return;
    }
    ex.target = ep;
    ex.endpoint = ep.key;
    this.inner.call(ex);
  }
}

export const balanceLayer = (): HttpLayer => (inner) => new Balance(inner);
