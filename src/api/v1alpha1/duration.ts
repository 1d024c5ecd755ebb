// Durations in resources are strings in Gateway API style ("250ms", "10s", "1m", "1h30m"); the proxy works in milliseconds.

const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses "1h30m", "10s", "250ms" to milliseconds; returns undefined for anything else. */
export function parseDuration(text: string): number | undefined {
  if (text === '0') return 0;
  let total = 0;
  let pos = 0;
  PART.lastIndex = 0;
  while (pos < text.length) {
    PART.lastIndex = pos;
    const m = PART.exec(text);
    if (!m) return undefined;
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
    pos = PART.lastIndex;
  }
  return pos === 0 ? undefined : Math.round(total);
}

/** The strings parseDuration accepts, as a JSON Schema `pattern` (editors check durations with it). */
export const DURATION_PATTERN = '^(0|([0-9]+(\\.[0-9]+)?(ms|s|m|h))+)$';
