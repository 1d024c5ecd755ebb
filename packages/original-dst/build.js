// Install step: builds the addon with node-gyp against the running Node's own headers when they are installed (no
// download, so it works offline), and never fails the install: without the addon, only --transparent is unavailable.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

if (process.platform !== 'linux') process.exit(0);
const prefix = path.dirname(path.dirname(process.execPath));
const args = ['rebuild'];
if (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
// npm passes the path of its bundled node-gyp to install scripts; by hand, look for npm's copy next to this Node.
const bundled = path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
const gyp = process.env.npm_config_node_gyp || (fs.existsSync(bundled) ? bundled : null);
const r = gyp ? spawnSync(process.execPath, [gyp, ...args], { stdio: 'inherit', cwd: __dirname }) : spawnSync('node-gyp', args, { stdio: 'inherit', cwd: __dirname, shell: true });
if (r.status !== 0) {
  console.warn('@mycel/original-dst: the native build failed; `mycel proxy --transparent` is unavailable (explicit mode works)');
}
