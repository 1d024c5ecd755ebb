// Per-destination connection accounting shared by the transports: a connection slot for every connection open (or
// opening) to the destination's endpoints, and a pending slot for every request waiting for its connection to connect.
// The destination's circuit breaker provides both; a refusal fails the request with 503 circuit-open.

import { MycelError } from '../../core/errors.js';

/** One counted resource with a limit (the circuit breaker's Slots fit). */
export interface Slot {
  readonly count: number;
  readonly limit: number;
  /** Null when taken, else the name of the limit that refused. */
  tryAcquire(): string | null;
  release(): void;
}

export interface ConnectionSlots {
  readonly connections: Slot;
  readonly pending: Slot;
}

export function connectionRefused(why: string, slot: Slot): MycelError {
  const what = why === 'max-connections' ? 'connections to the destination are open' : 'requests to the destination wait for a connection';
  return new MycelError('circuit-open', `${why}: ${slot.count} ${what}, the limit of its TrafficPolicy`);
}
