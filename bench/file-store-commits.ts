// Commit latency and commits/s of the file store, with and without group commit, at a few concurrencies.
// Standalone (not part of run.ts): `node dist/bench/file-store-commits.js [seconds per case] [dir]` after a build;
// the directory decides the file system measured (default: the OS temp dir).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../src/core/log.js';
import { FileStore } from '../src/control-plane/store/file-store.js';
import { percentile } from './lib/stats.js';

const seconds = Number(process.argv[2] ?? 2);
const base = process.argv[3] ?? tmpdir();
const cases = [
  { maxBatch: 1, concurrency: 1 },
  { maxBatch: 1, concurrency: 16 },
  { maxBatch: 64, concurrency: 1 },
  { maxBatch: 64, concurrency: 16 },
  { maxBatch: 64, concurrency: 64 },
];

console.log(`file store commits, ${seconds} s per case, in ${base}`);
console.log('group commit  writers  commits/s  p50 ms  p99 ms');
for (const c of cases) {
  const dir = mkdtempSync(join(base, 'mycel-store-bench-'));
  const store = new FileStore(dir, { maxBatch: c.maxBatch, log: silentLogger });
  await store.open();
  const latencies: number[] = [];
  const stopAt = performance.now() + seconds * 1000;
  // A typical endpoint registration: one small object per commit.
  const writer = async (w: number) => {
    for (let i = 0; performance.now() < stopAt; i++) {
      const t0 = performance.now();
      await store.commit([{ op: 'put', kind: 'Endpoint', namespace: 'default', name: `w${w}-${i % 100}`, value: { ip: '10.0.0.1', port: 8080, labels: { version: 'v1' } } }]);
      latencies.push(performance.now() - t0);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: c.concurrency }, (_, w) => writer(w)));
  const elapsed = (performance.now() - started) / 1000;
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  const rate = Math.round(latencies.length / elapsed);
  const p = (q: number) => (percentile(latencies, q) ?? 0).toFixed(2);
  console.log(`${c.maxBatch > 1 ? 'on ' : 'off'}           ${String(c.concurrency).padStart(7)}  ${String(rate).padStart(9)}  ${p(50).padStart(6)}  ${p(99).padStart(6)}`);
}
