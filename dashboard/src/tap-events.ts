// Tap events as the pages keep them: newest first in time order (bounded), and which of them count as failures.

import type { TapEvent } from './api.js';

/** An event with its arrival number, a stable key for the rows that show it. */
export type Tapped = TapEvent & { seq: number };

/**
 * A fresh array (so that Preact sees the change) with `e` in time order, newest first: events of several proxies
 * arrive in batches, not quite in order. At most `keep` are kept.
 */
export function insertNewestFirst(events: Tapped[], e: Tapped, keep: number): Tapped[] {
  let i = 0;
  while (i < events.length && (events[i] as Tapped).time > e.time) i++;
  if (i >= keep) return events;
  const out = events.slice(0, keep - 1);
  out.splice(i, 0, e);
  return out;
}

/** A failure worth listing: the mesh failed it (error set), the app answered 5xx, or gRPC said no. */
export function isFailure(e: TapEvent): boolean {
  return e.error !== null || e.status >= 500 || grpcFailed(e);
}

/** A gRPC status other than OK ("0"); null for plain HTTP. */
export function grpcFailed(e: TapEvent): boolean {
  return e.grpcStatus !== null && e.grpcStatus !== '0';
}
