// Writes generated documentation (docs/errors.md) from the compiled sources; run via `npm run docs`.
import { writeFileSync, mkdirSync } from 'node:fs';
const { renderErrorDocs } = await import('../dist/src/core/error-docs.js');
mkdirSync('docs', { recursive: true });
writeFileSync('docs/errors.md', renderErrorDocs());
console.log('wrote docs/errors.md');
