// A small Prometheus registry for the proxy's hot path: label sets are resolved once to a series object and cached,
// so recording a request is a map lookup and an add. Renders the text exposition format (version 0.0.4).

type Series = { labels: string; value: number };

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelText(names: readonly string[], values: readonly string[]): string {
  if (names.length === 0) return '';
  let out = '{';
  for (let i = 0; i < names.length; i++) out += `${i ? ',' : ''}${names[i]}="${escapeLabel(values[i] ?? '')}"`;
  return out + '}';
}

function formatNumber(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

interface Metric {
  render(out: string[]): void;
}

abstract class Family<S> implements Metric {
  /** Series in creation order (the render order). */
  protected readonly series: S[] = [];
  /** A tree of maps, one level per label, the series at the leaves: a lookup allocates nothing (no joined key). */
  private readonly root = new Map<string, unknown>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[],
    private readonly type: 'counter' | 'gauge' | 'histogram',
  ) {}

  /** Forgets every series (for gauges whose label sets come and go, rebuilt before each render). */
  clear(): void {
    this.series.length = 0;
    this.root.clear();
  }

  /** The series for these label values (created on first use); keep it to record without a lookup. */
  child(...values: string[]): S {
    let node = this.root;
    const last = values.length - 1;
    for (let i = 0; i < last; i++) {
      const v = values[i] as string;
      let next = node.get(v) as Map<string, unknown> | undefined;
      if (next === undefined) node.set(v, (next = new Map()));
      node = next;
    }
    const leaf = last < 0 ? '' : (values[last] as string);
    let s = node.get(leaf) as S | undefined;
    if (s === undefined) {
      s = this.create(labelText(this.labelNames, values));
      node.set(leaf, s);
      this.series.push(s);
    }
    return s;
  }

  protected abstract create(labels: string): S;
  protected abstract renderSeries(s: S, out: string[]): void;

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`);
    for (const s of this.series) this.renderSeries(s, out);
  }
}

export class Counter extends Family<Series> {
  constructor(name: string, help: string, labelNames: readonly string[] = []) {
    super(name, help, labelNames, 'counter');
  }
  protected create(labels: string): Series {
    return { labels, value: 0 };
  }
  protected renderSeries(s: Series, out: string[]): void {
    out.push(`${this.name}${s.labels} ${formatNumber(s.value)}`);
  }
  inc(values: string[] = [], n = 1): void {
    this.child(...values).value += n;
  }
}

export class Gauge extends Family<Series> {
  constructor(name: string, help: string, labelNames: readonly string[] = []) {
    super(name, help, labelNames, 'gauge');
  }
  protected create(labels: string): Series {
    return { labels, value: 0 };
  }
  protected renderSeries(s: Series, out: string[]): void {
    out.push(`${this.name}${s.labels} ${formatNumber(s.value)}`);
  }
  set(value: number, values: string[] = []): void {
    this.child(...values).value = value;
  }
}

export class HistogramSeries {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(
    readonly labels: string,
    readonly bounds: readonly number[],
  ) {
    this.counts = new Float64Array(bounds.length);
  }
  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > (b[i] as number)) i++;
    if (i < b.length) this.counts[i]! += 1;
    this.sum += v;
    this.count++;
  }
}

export class Histogram extends Family<HistogramSeries> {
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    private readonly bounds: readonly number[],
  ) {
    super(name, help, labelNames, 'histogram');
  }
  protected create(labels: string): HistogramSeries {
    return new HistogramSeries(labels, this.bounds);
  }
  protected renderSeries(s: HistogramSeries, out: string[]): void {
    const inner = s.labels.length > 0 ? s.labels.slice(1, -1) + ',' : '';
    let cum = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      cum += s.counts[i] as number;
      out.push(`${this.name}_bucket{${inner}le="${formatNumber(this.bounds[i] as number)}"} ${cum}`);
    }
    out.push(`${this.name}_bucket{${inner}le="+Inf"} ${s.count}`);
    out.push(`${this.name}_sum${s.labels} ${s.sum}`);
    out.push(`${this.name}_count${s.labels} ${s.count}`);
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];
  register<M extends Metric>(m: M): M {
    this.metrics.push(m);
    return m;
  }
  render(): string {
    const out: string[] = [];
    for (const m of this.metrics) m.render(out);
    return out.join('\n') + '\n';
  }
}

/** Latency buckets from 0.1 ms to 30 s. */
export const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
