// Builds the TypeScript sources to dist/ file by file with esbuild (no bundling), and bundles the browser dashboard
// (dashboard/) into dist/dashboard/ with content-hashed names; type checking is `npm run typecheck`.
import { build } from 'esbuild';
import { copyFileSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

// dashboard/: only its plain .ts modules and their unit tests run under Node; the .tsx pages exist only in the bundle.
const roots = ['src', 'test', 'bench', 'examples', 'dashboard'];
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

// The dashboard: one minified bundle of preact, d3-force, uPlot and the pages, its CSS beside it, no CDN.
const out = join('dist', 'dashboard');
const bundle = await build({
  entryPoints: { app: 'dashboard/src/main.tsx' },
  outdir: out,
  entryNames: '[name]-[hash]',
  bundle: true,
  minify: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome110', 'firefox115', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  sourcemap: 'linked',
  metafile: true,
  legalComments: 'linked',
  logLevel: 'warning',
});
const outputs = Object.keys(bundle.metafile.outputs).map((f) => basename(f));
const js = outputs.find((f) => /^app-\w+\.js$/.test(f));
const css = outputs.find((f) => /^app-\w+\.css$/.test(f));
if (js === undefined || css === undefined) throw new Error(`the dashboard bundle is missing its JS or CSS: ${outputs.join(', ')}`);
writeFileSync(join(out, 'index.html'), readFileSync('dashboard/index.html', 'utf8').replace('{{JS}}', js).replace('{{CSS}}', css));
copyFileSync('dashboard/favicon.svg', join(out, 'favicon.svg'));
console.log(`bundled the dashboard into ${out}/ (${js}, ${css})`);
