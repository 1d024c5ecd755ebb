// A trace's spans in waterfall order: each span after its parent, siblings by start time, with its depth; spans whose
// parent never arrived start their own tree, so a partial trace still draws.

import type { Span } from './api.js';

export interface WaterfallRow {
  span: Span;
  depth: number;
}

export function waterfallRows(spans: Span[]): { rows: WaterfallRow[]; start: number; duration: number } {
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map<string | null, Span[]>();
  for (const s of spans) {
    const parent = s.parentSpanId !== null && ids.has(s.parentSpanId) && s.parentSpanId !== s.spanId ? s.parentSpanId : null;
    const list = children.get(parent) ?? [];
    list.push(s);
    children.set(parent, list);
  }
  for (const list of children.values()) list.sort((a, b) => a.startTime - b.startTime);
  const rows: WaterfallRow[] = [];
  const visited = new Set<string>();
  // An explicit stack (not recursion): a deep or cyclic trace cannot overflow; each span is placed once.
  const place = (roots: Span[]) => {
    const stack: WaterfallRow[] = [...roots].reverse().map((span) => ({ span, depth: 0 }));
    while (stack.length > 0) {
      const row = stack.pop() as WaterfallRow;
      if (visited.has(row.span.spanId)) continue;
      visited.add(row.span.spanId);
      rows.push(row);
      const kids = children.get(row.span.spanId) ?? [];
      for (let i = kids.length - 1; i >= 0; i--) stack.push({ span: kids[i] as Span, depth: row.depth + 1 });
    }
  };
  place(children.get(null) ?? []);
  // Spans that only point at each other (a broken exporter): shown at the end rather than lost.
  place([...spans].sort((a, b) => a.startTime - b.startTime).filter((s) => !visited.has(s.spanId)));
  if (rows.length === 0) return { rows, start: 0, duration: 0 };
  const start = Math.min(...rows.map((r) => r.span.startTime));
  const end = Math.max(...rows.map((r) => r.span.startTime + r.span.durationMs));
  return { rows, start, duration: end - start };
}
