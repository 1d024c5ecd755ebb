// Splits a stream of NDJSON text chunks into parsed values: a line may arrive in pieces, several may arrive at once,
// and a line that is not JSON is skipped rather than ending the stream.

export class NdjsonSplitter {
  private rest = '';
  /** Lines longer than this are dropped: a tap event is a few hundred bytes. */
  constructor(private readonly maxLine = 1 << 20) {}

  push(chunk: string): unknown[] {
    const text = this.rest + chunk;
    const lines = text.split('\n');
    this.rest = lines.pop() ?? '';
    if (this.rest.length > this.maxLine) this.rest = '';
    return parseLines(lines);
  }

  /** What is left when the stream ends without a final newline. */
  end(): unknown[] {
    const last = this.rest;
    this.rest = '';
    return parseLines([last]);
  }
}

function parseLines(lines: string[]): unknown[] {
  const out: unknown[] = [];
  for (const line of lines) {
    const t = line.trim();
    if (t === '') continue;
    try {
      out.push(JSON.parse(t));
    } catch {
      /* a torn or foreign line: skip it */
    }
  }
  return out;
}
