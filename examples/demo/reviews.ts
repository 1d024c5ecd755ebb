// The demo's "reviews" service (HTTP/1.1) in two versions, chosen by VERSION: v1 answers reviews only; v2 adds each
// product's stars from ratings (HTTP/2, through the upstream binding MYCEL_UPSTREAM_RATINGS) and says when it cannot.

import http from 'node:http';
import { H2Client } from './lib/h2-client.js';
import { sendJson, serve } from './lib/serve.js';
import { traceHeaders } from './lib/trace-headers.js';

const VERSION = process.env.VERSION === 'v2' ? 'v2' : 'v1';
const ratings = VERSION === 'v2' ? H2Client.fromEnv('MYCEL_UPSTREAM_RATINGS') : null;

const REVIEWS: Record<number, Array<{ reviewer: string; text: string }>> = {
  1: [{ reviewer: 'ada', text: 'Up and running before my coffee cooled.' }, { reviewer: 'lin', text: 'The mTLS came for free.' }],
  2: [{ reviewer: 'sam', text: 'Beautiful, if a little dusty.' }],
  3: [{ reviewer: 'kim', text: 'Found a morel on page 112.' }, { reviewer: 'joe', text: 'Waterproof cover: yes.' }],
  4: [{ reviewer: 'eve', text: 'Warm, but the left one keeps reconnecting.' }],
};

async function stars(productId: number, trace: Record<string, string>): Promise<{ stars?: number; votes?: number; error?: string }> {
  try {
    const r = await ratings!.request({ ':method': 'GET', ':path': `/ratings/${productId}`, ...trace }, null, 2000);
    const status = Number(r.headers[':status']);
    // A failure made by the mesh names its reason (x-mycel-error), e.g. fault-injected or denied.
    if (status !== 200) return { error: `ratings answered ${status}${r.headers['x-mycel-error'] ? ` (${String(r.headers['x-mycel-error'])})` : ''}` };
    const body = JSON.parse(r.body.toString('utf8')) as { stars: number; votes: number };
    return { stars: body.stars, votes: body.votes };
  } catch (err) {
    return { error: `ratings unreachable: ${(err as Error).message}` };
  }
}

const server = http.createServer((req, res) => {
  req.resume();
  const m = /^\/reviews\/(\d+)$/.exec(req.url ?? '');
  if (req.method !== 'GET' || m === null) return sendJson(res, 404, { error: 'try GET /reviews/ID' });
  const productId = Number(m[1]);
  const items = REVIEWS[productId] ?? [];
  if (ratings === null) return sendJson(res, 200, { version: VERSION, productId, items });
  void stars(productId, traceHeaders(req.headers)).then((rating) => sendJson(res, 200, { version: VERSION, productId, items, rating }));
});
serve(`reviews ${VERSION}`, server);
