import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Counter, Gauge, Histogram, Registry } from './registry.js';

test('renders counters, gauges and cumulative histograms in the text format with escaped labels', () => {
  const reg = new Registry();
  const c = reg.register(new Counter('x_total', 'Things', ['a']));
  const g = reg.register(new Gauge('y', 'Level'));
  const h = reg.register(new Histogram('z_seconds', 'Time', ['k'], [0.1, 1]));
  c.inc(['q"u\\o\nte']);
  c.inc(['q"u\\o\nte'], 2);
  g.set(5);
  h.child('a').observe(0.05);
  h.child('a').observe(0.5);
  h.child('a').observe(3);
  assert.equal(
    reg.render(),
    [
      '# HELP x_total Things', '# TYPE x_total counter', 'x_total{a="q\\"u\\\\o\\nte"} 3',
      '# HELP y Level', '# TYPE y gauge', 'y 5',
      '# HELP z_seconds Time', '# TYPE z_seconds histogram',
      'z_seconds_bucket{k="a",le="0.1"} 1', 'z_seconds_bucket{k="a",le="1"} 2', 'z_seconds_bucket{k="a",le="+Inf"} 3',
      'z_seconds_sum{k="a"} 3.55', 'z_seconds_count{k="a"} 3',
    ].join('\n') + '\n',
  );
});
