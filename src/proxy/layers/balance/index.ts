// Endpoint pickers for one destination: RoundRobin, LeastRequest (P2C), EWMA (peak-EWMA P2C), RingHash, Maglev.
// Use from the request path: `const s = balancer.pick(hashKey)`, then `balancer.start(s)` when the request is sent
// and `balancer.end(s, rttMs, ok)` once when it ends; call `update(endpoints)` when the healthy set changes.

import { performance } from 'node:perf_hooks';
import type { BalancedEndpoint, BalancerClock, EndpointBalancer } from './endpoint-set.js';
import { LeastRequestBalancer } from './least-request.js';
import { MaglevBalancer, type MaglevOptions } from './maglev.js';
import { PeakEwmaBalancer, type PeakEwmaOptions } from './peak-ewma.js';
import { RingHashBalancer, type RingHashOptions } from './ring-hash.js';
import { RoundRobinBalancer } from './round-robin.js';

export { EndpointBalancer, EndpointState, type BalancedEndpoint, type BalancerClock } from './endpoint-set.js';
export { hash64 } from './hash64.js';
export { LeastRequestBalancer, MaglevBalancer, PeakEwmaBalancer, RingHashBalancer, RoundRobinBalancer };
export type { MaglevOptions, PeakEwmaOptions, RingHashOptions };

/** The load-balancer choice of a TrafficPolicy, with each policy's own knobs. */
export type BalancerOptions =
  | { policy: 'RoundRobin' }
  | { policy: 'LeastRequest' }
  | ({ policy: 'EWMA' } & PeakEwmaOptions)
  | ({ policy: 'RingHash' } & RingHashOptions)
  | ({ policy: 'Maglev' } & MaglevOptions);

export function createBalancer<E extends BalancedEndpoint>(options: BalancerOptions, clock: Partial<BalancerClock> = {}): EndpointBalancer<E> {
  const c: BalancerClock = { now: clock.now ?? (() => performance.now()), random: clock.random ?? Math.random };
  switch (options.policy) {
    case 'RoundRobin':
      return new RoundRobinBalancer<E>(c);
    case 'LeastRequest':
      return new LeastRequestBalancer<E>(c);
    case 'EWMA':
      return new PeakEwmaBalancer<E>(c, options);
    case 'RingHash':
      return new RingHashBalancer<E>(c, options);
    case 'Maglev':
      return new MaglevBalancer<E>(c, options);
  }
}
