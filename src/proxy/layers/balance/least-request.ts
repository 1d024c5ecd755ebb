// Least request by power of two choices: draw two endpoints at random, send to the one with fewer requests in flight
// (Mitzenmacher's result: nearly as even as a full scan, O(1), and no herd on the single least-loaded endpoint).

import { EndpointBalancer, type BalancedEndpoint, type EndpointState } from './endpoint-set.js';

export class LeastRequestBalancer<E extends BalancedEndpoint = BalancedEndpoint> extends EndpointBalancer<E> {
  pick(): EndpointState<E> | undefined {
    if (!this.drawTwo()) return this.first;
    const a = this.first as EndpointState<E>;
    const b = this.second as EndpointState<E>;
    return b.inFlight < a.inFlight ? b : a;
  }
}
