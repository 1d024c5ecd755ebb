// Writes the JSON Schema of every resource kind to schemas/ from the compiled sources; run via `npm run schemas`.
// Files of kinds that no longer exist are removed, so that schemas/ always matches KINDS.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
const { renderJsonSchemas } = await import('../dist/src/api/v1alpha1/json-schema.js');
const files = renderJsonSchemas();
mkdirSync('schemas', { recursive: true });
for (const name of readdirSync('schemas')) if (name.endsWith('.json') && !files.has(name)) rmSync(join('schemas', name));
for (const [name, text] of files) writeFileSync(join('schemas', name), text);
console.log(`wrote ${files.size} files to schemas/`);
