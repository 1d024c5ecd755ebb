// Ring hash (Ketama style consistent hashing): every endpoint owns many points on a 53-bit ring, a request key goes
// to the owner of the first point at or after the key's hash. Adding an endpoint moves only about 1/(n+1) of the keys.

import { compareEndpointKeys, EndpointBalancer, type BalancedEndpoint, type BalancerClock, type EndpointState } from './endpoint-set.js';
import { hash64 } from './hash64.js';

export interface RingHashOptions {
  /** The ring has at least this many points (up to twice as many); more points, more even shares (default 1024). */
  minimumRingSize?: number;
  /** And at most this many (default 8 Mi), which bounds memory when there are many endpoints. */
  maximumRingSize?: number;
}

export class RingHashBalancer<E extends BalancedEndpoint = BalancedEndpoint> extends EndpointBalancer<E> {
  private readonly minimumRingSize: number;
  private readonly maximumRingSize: number;
  /** Sorted ring positions, and the index into `states` of each position's endpoint. */
  private points = new Float64Array(0);
  private owners = new Int32Array(0);

  constructor(clock: BalancerClock, options: RingHashOptions = {}) {
    super(clock);
    this.minimumRingSize = Math.max(1, Math.floor(options.minimumRingSize ?? 1024));
    this.maximumRingSize = Math.max(this.minimumRingSize, Math.floor(options.maximumRingSize ?? 8 * 1024 * 1024));
  }

  get ringSize(): number {
    return this.points.length;
  }

  /** The endpoint owning `hashKey`; without a key (the header or cookie was absent) endpoints take turns. */
  pick(hashKey?: string): EndpointState<E> | undefined {
    const n = this.points.length;
    if (hashKey === undefined || n === 0) return this.nextInTurn();
    const h = hash64(hashKey);
    // First position >= h (binary search); past the last position the ring wraps to the first.
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.points[mid] as number) < h) lo = mid + 1;
      else hi = mid;
    }
    return this.states[this.owners[lo === n ? 0 : lo] as number];
  }

  protected override rebuild(): void {
    const n = this.states.length;
    if (n === 0) {
      this.points = new Float64Array(0);
      this.owners = new Int32Array(0);
      return;
    }
    // Points per endpoint: the power of two that reaches the minimum ring size. A plain minimum / n would change
    // with every endpoint added or removed and reshuffle keys among the others; this changes only when n crosses a
    // power of two (halving every endpoint's points, the first half of which stay where they were).
    const wanted = 2 ** Math.ceil(Math.log2(Math.ceil(this.minimumRingSize / n)));
    const perEndpoint = Math.max(1, Math.min(wanted, Math.floor(this.maximumRingSize / n)));
    const total = perEndpoint * n;
    const positions = new Float64Array(total);
    const owner = new Int32Array(total);
    let k = 0;
    for (let i = 0; i < n; i++) {
      const key = (this.states[i] as EndpointState<E>).endpoint.key;
      for (let r = 0; r < perEndpoint; r++) {
        positions[k] = hash64(`${key}_${r}`);
        owner[k++] = i;
      }
    }
    // Sort positions with their owners; equal positions are ordered by endpoint key so every proxy builds the same ring.
    const order = Array.from({ length: total }, (_, i) => i);
    order.sort((a, b) => (positions[a] as number) - (positions[b] as number) || compareEndpointKeys(this.states, owner[a] as number, owner[b] as number));
    this.points = new Float64Array(total);
    this.owners = new Int32Array(total);
    for (let i = 0; i < total; i++) {
      const from = order[i] as number;
      this.points[i] = positions[from] as number;
      this.owners[i] = owner[from] as number;
    }
  }
}
