// Round robin: each endpoint in turn, from a random starting point.

import { EndpointBalancer, type BalancedEndpoint, type EndpointState } from './endpoint-set.js';

export class RoundRobinBalancer<E extends BalancedEndpoint = BalancedEndpoint> extends EndpointBalancer<E> {
  pick(): EndpointState<E> | undefined {
    return this.nextInTurn();
  }
}
