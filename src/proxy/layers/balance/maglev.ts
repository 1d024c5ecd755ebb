// Maglev hashing (Google's Maglev paper, section 3.4): a lookup table of prime size M filled from each endpoint's own
// permutation of the slots, taking turns; a key goes to table[hash % M]. Shares are even to within about n/M, lookups
// are O(1), and adding an endpoint moves roughly 1/(n+1) of the keys (a little more than a ring).

import { compareEndpointKeys, EndpointBalancer, type BalancedEndpoint, type BalancerClock, type EndpointState } from './endpoint-set.js';
import { hash64 } from './hash64.js';

export interface MaglevOptions {
  /** Table size, a prime well above the endpoint count (default 65537, about 100 slots per endpoint up to 650). */
  tableSize?: number;
}

export class MaglevBalancer<E extends BalancedEndpoint = BalancedEndpoint> extends EndpointBalancer<E> {
  private readonly size: number;
  /** Slot -> index into `states`; empty while there are no endpoints. */
  private table = new Int32Array(0);

  constructor(clock: BalancerClock, options: MaglevOptions = {}) {
    super(clock);
    const size = options.tableSize ?? 65537;
    if (!Number.isSafeInteger(size) || size < 2 || size > 5_000_011 || !isPrime(size)) {
      throw new RangeError(`Maglev table size must be a prime between 2 and 5000011, got ${size}`);
    }
    this.size = size;
  }

  /** The endpoint owning `hashKey`; without a key endpoints take turns. */
  pick(hashKey?: string): EndpointState<E> | undefined {
    if (hashKey === undefined || this.table.length === 0) return this.nextInTurn();
    return this.states[this.table[hash64(hashKey) % this.size] as number];
  }

  protected override rebuild(): void {
    const n = this.states.length;
    const m = this.size;
    if (n === 0) {
      this.table = new Int32Array(0);
      return;
    }
    // Each endpoint's permutation of the slots: offset + j * skip (mod M); skip is never 0, M is prime, so it visits all.
    const offset = new Float64Array(n);
    const skip = new Float64Array(n);
    const next = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const key = (this.states[i] as EndpointState<E>).endpoint.key;
      offset[i] = hash64(`${key}#offset`) % m;
      skip[i] = (hash64(`${key}#skip`) % (m - 1)) + 1;
    }
    // Turns go in key order, so that every proxy builds the same table whatever order its endpoint list has.
    const turns = Array.from({ length: n }, (_, i) => i);
    turns.sort((a, b) => compareEndpointKeys(this.states, a, b));
    const table = new Int32Array(m).fill(-1);
    let filled = 0;
    // Endpoints take turns claiming their next preferred free slot until the table is full (at most M claims).
    while (filled < m) {
      for (let t = 0; t < n && filled < m; t++) {
        const i = turns[t] as number;
        let j = next[i] as number;
        let slot = ((offset[i] as number) + j * (skip[i] as number)) % m;
        while ((table[slot] as number) >= 0) {
          j++;
          slot = ((offset[i] as number) + j * (skip[i] as number)) % m;
        }
        table[slot] = i;
        next[i] = j + 1;
        filled++;
      }
    }
    this.table = table;
  }
}

function isPrime(x: number): boolean {
  if (x < 2) return false;
  if (x % 2 === 0) return x === 2;
  for (let d = 3; d * d <= x; d += 2) if (x % d === 0) return false;
  return true;
}
