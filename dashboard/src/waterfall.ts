// A trace's spans as waterfall rows (tree order from telemetry/span-tree.ts) and the time axis they are drawn on.

import { spanTreeOrder } from '../../src/telemetry/span-tree.js';
import type { Span } from './api.js';

export interface WaterfallRow {
  span: Span;
  depth: number;
}

export function waterfallRows(spans: Span[]): { rows: WaterfallRow[]; start: number; duration: number } {
  const rows: WaterfallRow[] = spanTreeOrder(spans);
  if (rows.length === 0) return { rows, start: 0, duration: 0 };
  const start = Math.min(...rows.map((r) => r.span.startTime));
  const end = Math.max(...rows.map((r) => r.span.startTime + r.span.durationMs));
  return { rows, start, duration: end - start };
}
