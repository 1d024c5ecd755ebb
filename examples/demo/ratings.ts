// The demo's "ratings" service (HTTP/2, h2c): GET /ratings/ID answers the product's average stars and vote count.
// Only reviews v2 calls it.

import http2 from 'node:http2';
import { serve } from './lib/serve.js';

const RATINGS: Record<number, { stars: number; votes: number }> = {
  1: { stars: 4.5, votes: 128 },
  2: { stars: 3.8, votes: 41 },
  3: { stars: 4.9, votes: 302 },
  4: { stars: 2.7, votes: 12 },
};

const server = http2.createServer((req, res) => {
  const m = /^\/ratings\/(\d+)$/.exec(req.url ?? '');
  const rating = m ? RATINGS[Number(m[1])] : undefined;
  res.setHeader('content-type', 'application/json');
  if (req.method !== 'GET' || m === null) {
    res.writeHead(404).end(JSON.stringify({ error: 'try GET /ratings/ID' }) + '\n');
    return;
  }
  if (rating === undefined) {
    res.writeHead(404).end(JSON.stringify({ error: `no ratings for product ${m[1]}` }) + '\n');
    return;
  }
  res.writeHead(200).end(JSON.stringify({ productId: Number(m[1]), ...rating, caller: req.headers['x-mycel-peer-identity'] ?? null }) + '\n');
});
serve('ratings', server);
