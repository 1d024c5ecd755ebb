// Loads the SO_ORIGINAL_DST addon built by node-gyp (build/Release/original_dst.node). Where it was not built (not
// Linux, no compiler), `originalDst` is null and `loadError` says why, so callers can fall back to explicit mode.
'use strict';

const path = require('node:path');

let originalDst = null;
let loadError = null;
if (process.platform !== 'linux') {
  loadError = new Error(`@mycel/original-dst works on Linux only (this is ${process.platform})`);
} else {
  try {
    originalDst = require(path.join(__dirname, 'build', 'Release', 'original_dst.node')).originalDst;
  } catch (err) {
    loadError = new Error(
      `@mycel/original-dst is not built (${err.message.split('\n')[0]}); build it with ` +
        '`node build.js` in ' + __dirname + ' (needs python3, make and a C/C++ compiler)',
    );
  }
}

module.exports = { originalDst, loadError };
