// When the mesh CA's certificates deserve a warning in `mycel check`: a root or intermediate with less than 30 days
// left, a proxy's leaf with less than a quarter of its lifetime left (renewal at half-life has been failing a while).

export const CA_WARN_MS = 30 * 86_400_000;
export const LEAF_WARN_FRACTION = 0.25;

export type ExpiryState = 'ok' | 'warn' | 'expired';

/** A root or intermediate: expired, under 30 days left, or fine. */
export function caExpiryState(notAfter: number, now: number): ExpiryState {
  if (notAfter <= now) return 'expired';
  return notAfter - now < CA_WARN_MS ? 'warn' : 'ok';
}

/** A workload leaf, judged against its own lifetime (issuedAt to notAfter), so that seconds-long test leaves work too. */
export function leafExpiryState(notAfter: number, issuedAt: number, now: number): ExpiryState {
  if (notAfter <= now) return 'expired';
  const lifetime = Math.max(1, notAfter - issuedAt);
  return (notAfter - now) / lifetime < LEAF_WARN_FRACTION ? 'warn' : 'ok';
}
