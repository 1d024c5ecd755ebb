// The demo's load generator: a few requests per second (LOADGEN_RPS, default 4) to http://web/api/products/ID through
// HTTP_PROXY (its own sidecar), every fourth as x-user: tester. GET / on $PORT shows what it saw: statuses, reviews
// versions (the canary split), ratings that failed (a fault) and mesh errors. At most 8 requests in flight: a slow
// mesh slows it, never piles up.

import http from 'node:http';
import { get } from './lib/proxy-client.js';
import { sendJson, serve } from './lib/serve.js';

const RPS = Math.min(50, Math.max(0.2, Number(process.env.LOADGEN_RPS ?? 4)));
const MAX_IN_FLIGHT = 8;

const seen = {
  sent: 0,
  skipped: 0,
  statuses: {} as Record<string, number>,
  reviewsVersions: {} as Record<string, number>,
  testerVersions: {} as Record<string, number>,
  meshErrors: {} as Record<string, number>,
  ratingErrors: {} as Record<string, number>,
  lastError: null as string | null,
};
let inFlight = 0;
let n = 0;

function count(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

function tick(): void {
  if (inFlight >= MAX_IN_FLIGHT) {
    seen.skipped++;
    return;
  }
  n++;
  const tester = n % 4 === 0;
  inFlight++;
  seen.sent++;
  get(`http://web/api/products/${(n % 4) + 1}`, tester ? { 'x-user': 'tester' } : {}, 5000)
    .then((r) => {
      count(seen.statuses, String(r.status));
      if (r.headers['x-mycel-error']) count(seen.meshErrors, String(r.headers['x-mycel-error']));
      if (r.status === 200) {
        const reviews = (JSON.parse(r.body) as { reviews?: { version?: string; rating?: { error?: string } } }).reviews;
        count(tester ? seen.testerVersions : seen.reviewsVersions, reviews?.version ?? 'none');
        // Few distinct texts (a status and the mesh's reason), so the map stays small.
        if (reviews?.rating?.error !== undefined) count(seen.ratingErrors, reviews.rating.error.slice(0, 80));
      }
    })
    .catch((err: Error) => {
      count(seen.statuses, 'error');
      seen.lastError = err.message;
    })
    .finally(() => inFlight--);
}

setInterval(tick, Math.round(1000 / RPS));
serve('loadgen', http.createServer((req, res) => {
  req.resume();
  sendJson(res, 200, { rps: RPS, inFlight, ...seen });
}));
