// Builds the TypeScript sources to dist/ file by file with esbuild (no bundling); type checking is `npm run typecheck`.
import { build } from 'esbuild';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const roots = ['src', 'test', 'bench', 'examples'];
const entryPoints = [];
function collect(dir) {
  let entries;
  try { entries = readdirSync(dir, { withFileTypes: true }); } catch { return; }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) { if (e.name !== 'node_modules' && e.name !== 'results' && e.name !== 'testdata') collect(p); }
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) entryPoints.push(p);
  }
}
for (const r of roots) collect(r);
rmSync('dist', { recursive: true, force: true });
await build({
  entryPoints,
  outdir: 'dist',
  outbase: '.',
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  logLevel: 'warning',
});
console.log(`built ${entryPoints.length} files into dist/`);
