// Runs every compiled *.test.js under dist/ with Node's test runner (Node 20's --test does not expand globs).
// Usage: node scripts/run-tests.mjs [substring...]  (only files whose path contains one of the substrings)
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';

const filters = process.argv.slice(2);
const files = [];
function collect(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) collect(p);
    else if (e.name.endsWith('.test.js')) files.push(p);
  }
}
collect('dist');
const selected = files.filter((f) => filters.length === 0 || filters.some((s) => f.includes(s))).sort();
if (selected.length === 0) { console.error('no test files matched'); process.exit(1); }
const child = spawn(process.execPath, ['--test', '--test-reporter=tap', '--test-concurrency=2', '--test-timeout=180000', ...selected], { stdio: 'inherit' });
child.on('exit', (code, signal) => process.exit(signal ? 1 : code ?? 1));
