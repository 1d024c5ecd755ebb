// One small uPlot time series (rps, success rate or p99 over the stats window), sized to its box and themed from
// the page's CSS variables so that it reads in dark and light mode alike.

import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export interface PlotProps {
  title: string;
  /** What the x axis spans, e.g. "last 5 min". */
  window: string;
  /** Unix ms per point. */
  times: number[];
  values: Array<number | null>;
  format: (v: number | null) => string;
  /** CSS variable naming the line colour, e.g. --accent. */
  color: string;
  min?: number;
  max?: number;
  /** Shade the area under the line (off for rates near 100%, where it would be one solid block). */
  fill?: boolean;
}

/** x-axis ticks as HH:MM (seconds since the epoch in, local time out). */
function clock(s: number): string {
  const d = new Date(s * 1000);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

export function Plot({ title, window, times, values, format, color, min, max, fill = true }: PlotProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data: uPlot.AlignedData = [times.map((t) => t / 1000), values];

  useEffect(() => {
    const el = box.current;
    if (el === null) return;
    const stroke = cssVar(color, '#3fb68b');
    const axis = { stroke: cssVar('--muted', '#8a94a6'), grid: { stroke: cssVar('--grid', 'rgba(128,128,128,0.15)'), width: 1 }, ticks: { show: false }, font: '11px system-ui, sans-serif' };
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: 150,
      legend: { show: false },
      cursor: { points: { size: 6 } },
      scales: { x: { time: true }, y: { range: (_u, lo, hi) => [min ?? Math.min(0, lo), max ?? (hi > 0 ? hi * 1.15 : 1)] } },
      axes: [{ ...axis, values: (_u, splits) => splits.map(clock) }, { ...axis, size: 58, values: (_u, splits) => splits.map((v) => format(v)) }],
      series: [{}, { label: title, stroke, width: 2, ...(fill ? { fill: stroke + '22' } : {}), spanGaps: false, points: { show: false } }],
    };
    const u = new uPlot(opts, data, el);
    plot.current = u;
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height: 150 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
    // Built once per series kind; new points arrive through setData below.
  }, [title, color]);

  useEffect(() => {
    plot.current?.setData(data);
  });

  return (
    <div class="plot card">
      <div class="plot-head">
        <span>{title}</span>
        <span>{window}</span>
      </div>
      <div class="plot-box" ref={box} />
      {times.length === 0 && <div class="plot-empty muted">no points yet</div>}
    </div>
  );
}
