// Reads a Retry-After field (RFC 9110 section 10.2.3): delay-seconds or an HTTP-date.

/** Milliseconds to wait before retrying, or -1 when the value is neither delay-seconds nor a date. */
export function parseRetryAfter(value: string, nowEpochMs: number): number {
  const v = value.trim();
  if (/^\d{1,10}$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  if (!Number.isFinite(at) || !/[a-z]/i.test(v)) return -1; // Date.parse takes bare numbers and odd shapes; a date has a month or day name
  return Math.max(0, at - nowEpochMs);
}
