// Circuit-breaker counters for one destination: connections, pending requests (waiting for a connection), requests
// and retries in flight, each with a limit. Use from the request path: `const why = breaker.requests.tryAcquire()`;
// when `why` is not null answer 503 with x-mycel-error `circuit-open` (naming `why` in the detail), else call
// `breaker.requests.release()` exactly once when the request ends. `connections`, `pending` and `retries` likewise.

/** Which limit refused (constant strings: nothing is allocated to say no). */
export type BreakerReason = 'max-connections' | 'max-pending-requests' | 'max-requests' | 'max-retries';

export interface BreakerLimits {
  /** Connections open to the destination's endpoints (default 1024). */
  maxConnections?: number;
  /** Requests queued for a connection (default 1024). */
  maxPendingRequests?: number;
  /** Requests in flight (default 1024). */
  maxRequests?: number;
  /** Retries in flight (default 1024; the retry budget is the finer control). */
  maxRetries?: number;
}

const DEFAULT_LIMIT = 1024;

/** One counted resource with a limit. */
export class Slots {
  /** In use now. */
  count = 0;
  limit = DEFAULT_LIMIT;

  constructor(readonly reason: BreakerReason) {}

  /** Takes a slot (null), or says which limit is reached. */
  tryAcquire(): BreakerReason | null {
    if (this.count >= this.limit) return this.reason;
    this.count++;
    return null;
  }

  /** Gives a slot back; an extra release never goes below zero. */
  release(): void {
    if (this.count > 0) this.count--;
  }

  get full(): boolean {
    return this.count >= this.limit;
  }
}

export class CircuitBreaker {
  readonly connections = new Slots('max-connections');
  readonly pending = new Slots('max-pending-requests');
  readonly requests = new Slots('max-requests');
  readonly retries = new Slots('max-retries');

  constructor(limits: BreakerLimits = {}) {
    this.setLimits(limits);
  }

  /** New limits from a config push; the counts in flight carry over (over a lowered limit, new work waits until they drain). */
  setLimits(limits: BreakerLimits): void {
    this.connections.limit = limit(limits.maxConnections);
    this.pending.limit = limit(limits.maxPendingRequests);
    this.requests.limit = limit(limits.maxRequests);
    this.retries.limit = limit(limits.maxRetries);
  }

  /** Some counter is at its limit, so the next acquire of that kind would be refused (the circuit_breaker_open gauge). */
  get open(): boolean {
    return this.connections.full || this.pending.full || this.requests.full || this.retries.full;
  }
}

function limit(v: number | undefined): number {
  return v === undefined || Number.isNaN(v) ? DEFAULT_LIMIT : Math.max(0, Math.floor(v));
}

/** The breakers of every destination a proxy calls, created on first use and kept across config pushes. */
export class CircuitBreakers {
  private readonly byDestination = new Map<string, CircuitBreaker>();

  /** The destination's breaker with these limits (an existing one keeps its counts). */
  configure(destination: string, limits: BreakerLimits): CircuitBreaker {
    let b = this.byDestination.get(destination);
    if (b === undefined) {
      b = new CircuitBreaker(limits);
      this.byDestination.set(destination, b);
    } else {
      b.setLimits(limits);
    }
    return b;
  }

  get(destination: string): CircuitBreaker | undefined {
    return this.byDestination.get(destination);
  }

  /** Forgets destinations no longer in the config. */
  retain(destinations: Iterable<string>): void {
    const keep = new Set(destinations);
    for (const d of this.byDestination.keys()) if (!keep.has(d)) this.byDestination.delete(d);
  }

  /** Destinations whose breaker is open right now. */
  openDestinations(): string[] {
    const out: string[] = [];
    for (const [d, b] of this.byDestination) if (b.open) out.push(d);
    return out;
  }
}
