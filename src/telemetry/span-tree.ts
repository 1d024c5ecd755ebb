// A trace's spans in tree order, for the waterfalls of `mycel trace` and the dashboard: each span after its parent,
// siblings by start time, with its depth. Pure (no Node APIs): the dashboard's bundle uses it too.

/** What ordering needs of a span. */
export interface TreeSpan {
  spanId: string;
  parentSpanId: string | null;
  startTime: number;
}

/**
 * Spans in tree order, each with its depth. A span whose parent never arrived starts its own tree, so a partial trace
 * still draws; spans only reachable through a cycle of parent ids (a broken exporter) come last, at depth 0, rather
 * than being lost. Each span is placed once.
 */
export function spanTreeOrder<S extends TreeSpan>(spans: readonly S[]): Array<{ span: S; depth: number }> {
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map<string | null, S[]>();
  for (const s of spans) {
    const parent = s.parentSpanId !== null && ids.has(s.parentSpanId) && s.parentSpanId !== s.spanId ? s.parentSpanId : null;
    const list = children.get(parent) ?? [];
    list.push(s);
    children.set(parent, list);
  }
  for (const list of children.values()) list.sort((a, b) => a.startTime - b.startTime);
  const out: Array<{ span: S; depth: number }> = [];
  const seen = new Set<string>();
  // An explicit stack (not recursion): a deep trace cannot overflow, and a cycle is cut where it closes.
  const stack: Array<{ span: S; depth: number }> = (children.get(null) ?? []).map((span) => ({ span, depth: 0 })).reverse();
  while (stack.length > 0) {
    const top = stack.pop()!;
    if (seen.has(top.span.spanId)) continue;
    seen.add(top.span.spanId);
    out.push(top);
    const kids = children.get(top.span.spanId) ?? [];
    for (let i = kids.length - 1; i >= 0; i--) stack.push({ span: kids[i]!, depth: top.depth + 1 });
  }
  for (const s of spans) if (!seen.has(s.spanId)) out.push({ span: s, depth: 0 });
  return out;
}
