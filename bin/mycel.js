#!/usr/bin/env node
// The mycel CLI entry: loads the compiled CLI from dist/ (built by `npm run build`, which `npm ci` runs via prepare).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
if (!existsSync(main)) {
  console.error('mycel: dist/ is missing; run `npm run build` in the mycel checkout first');
  process.exit(1);
}
await import(main);
