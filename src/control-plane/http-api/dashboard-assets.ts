// The dashboard's files (dist/dashboard/, built by scripts/build.mjs) as the control plane serves them at `/`: read
// once, with their content types, a strict Content-Security-Policy, and long caching for the content-hashed bundles.

import { readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/dashboard/, from this compiled file's place (dist/src/control-plane/http-api/). */
export const DASHBOARD_DIR = fileURLToPath(new URL('../../../dashboard/', import.meta.url));

/** No inline script or style, nothing from elsewhere: the bundle talks only to this origin's API. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
};

export interface Asset {
  body: Buffer;
  headers: Record<string, string>;
}

/** Headers every dashboard response carries, the error pages included. */
export function securityHeaders(): Record<string, string> {
  return {
    'content-security-policy': CONTENT_SECURITY_POLICY,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
  };
}

/**
 * The files at the top of `dir` by URL path; `/` is index.html. Names with a content hash (app-3FQ2KX7A.js) are
 * cached for a year; index.html is revalidated every time, so a rebuilt dashboard shows at the next load.
 */
export function loadDashboardAssets(dir: string = DASHBOARD_DIR): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  let names: string[];
  try {
    names = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name);
  } catch {
    return assets;
  }
  for (const name of names) {
    const type = TYPES[extname(name)];
    if (type === undefined) continue;
    const body = readFileSync(join(dir, name));
    const hashed = /-[A-Z0-9]{8}\.(js|css|map)$/.test(name);
    const headers = { ...securityHeaders(), 'content-type': type, 'content-length': String(body.length), 'cache-control': hashed ? 'public, max-age=31536000, immutable' : 'no-cache' };
    assets.set(`/${name}`, { body, headers });
    if (name === 'index.html') assets.set('/', { body, headers });
  }
  return assets;
}
