// Where the pieces of this installation are, from the compiled file's own location (dist/src/local/): the mycel
// entry script, the compiled demo apps and the demo's resource files.

import { fileURLToPath } from 'node:url';

/** The package root (the checkout, or node_modules/mycel). */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const MYCEL_BIN = fileURLToPath(new URL('../../../bin/mycel.js', import.meta.url));
/** The demo's resource files (examples/demo/*.yaml). */
export const DEMO_RESOURCES = fileURLToPath(new URL('../../../examples/demo/', import.meta.url));
/** The demo's apps, compiled next to the CLI (dist/examples/demo/*.js). */
export const DEMO_APPS = fileURLToPath(new URL('../../examples/demo/', import.meta.url));
