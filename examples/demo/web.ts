// The demo's front end "web" (HTTP/1.1): a product page built from catalog (gRPC, through the upstream binding
// MYCEL_UPSTREAM_CATALOG) and reviews (plain http://reviews/ through HTTP_PROXY, passing on x-user so that routes can
// match it). GET / is the page, GET /api/products/ID the same as JSON (the load generator calls it).

import http from 'node:http';
import { decodeProduct, decodeProductList, encodeProductId, frame, unframe, type Product } from './lib/grpc-wire.js';
import { H2Client } from './lib/h2-client.js';
import { get } from './lib/proxy-client.js';
import { sendJson, serve } from './lib/serve.js';
import { traceHeaders } from './lib/trace-headers.js';

const catalog = H2Client.fromEnv('MYCEL_UPSTREAM_CATALOG');

class GrpcError extends Error {}

async function grpcCall(method: string, message: Buffer, trace: Record<string, string>): Promise<Buffer> {
  const r = await catalog.request({ ':method': 'POST', ':path': `/mycel.demo.Catalog/${method}`, 'content-type': 'application/grpc', te: 'trailers', ...trace }, frame(message), 3000);
  // A trailers-only answer carries the status in its headers.
  const status = r.trailers['grpc-status'] ?? r.headers['grpc-status'];
  if (String(status) !== '0') {
    const why = decodeURIComponent(String(r.trailers['grpc-message'] ?? r.headers['grpc-message'] ?? ''));
    throw new GrpcError(`catalog ${method}: grpc-status ${String(status)}${why ? ` (${why})` : ''}${r.headers['x-mycel-error'] ? `, mesh: ${String(r.headers['x-mycel-error'])}` : ''}`);
  }
  return unframe(r.body)[0] ?? Buffer.alloc(0);
}

interface ReviewsResult {
  version?: string;
  items?: Array<{ reviewer: string; text: string }>;
  rating?: { stars?: number; votes?: number; error?: string };
  error?: string;
}

async function reviewsOf(id: number, user: string | undefined, trace: Record<string, string>): Promise<ReviewsResult> {
  try {
    const r = await get(`http://reviews/reviews/${id}`, user ? { ...trace, 'x-user': user } : trace, 3000);
    if (r.status !== 200) return { error: `reviews answered ${r.status}${r.headers['x-mycel-error'] ? ` (${String(r.headers['x-mycel-error'])})` : ''}` };
    return JSON.parse(r.body) as ReviewsResult;
  } catch (err) {
    return { error: `reviews unreachable: ${(err as Error).message}` };
  }
}

async function productPage(id: number, user: string | undefined, trace: Record<string, string>): Promise<{ product: Product; reviews: ReviewsResult }> {
  const [product, reviews] = await Promise.all([grpcCall('GetProduct', encodeProductId(id), trace).then(decodeProduct), reviewsOf(id, user, trace)]);
  return { product, reviews };
}

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function html(products: Product[], shown: { product: Product; reviews: ReviewsResult } | undefined): string {
  const list = products.map((p) => `<li><a href="/products/${p.id}">${escape(p.name)}</a> ${(p.priceCents / 100).toFixed(2)} €</li>`).join('');
  let detail = '';
  if (shown) {
    const r = shown.reviews;
    const stars = r.rating?.stars !== undefined ? `${r.rating.stars} ★ (${r.rating.votes} votes)` : r.rating?.error ? `no stars: ${escape(r.rating.error)}` : 'no stars in this version';
    const items = (r.items ?? []).map((i) => `<li><b>${escape(i.reviewer)}</b>: ${escape(i.text)}</li>`).join('');
    detail = `<h2>${escape(shown.product.name)}</h2><p>${escape(shown.product.description)}</p>
<h3>Reviews ${r.version ? `(reviews ${escape(r.version)})` : ''}</h3>${r.error ? `<p>${escape(r.error)}</p>` : `<p>${stars}</p><ul>${items}</ul>`}`;
  }
  return `<!doctype html><meta charset="utf-8"><title>Mycel demo shop</title>
<h1>Mycel demo shop</h1><p>web (HTTP/1.1) → catalog (gRPC), reviews v1/v2 (HTTP/1.1) → ratings (HTTP/2), all through sidecars.</p>
<ul>${list}</ul>${detail}\n`;
}

const server = http.createServer((req, res) => {
  req.resume();
  const url = new URL(req.url ?? '/', 'http://web');
  const user = typeof req.headers['x-user'] === 'string' ? req.headers['x-user'] : undefined;
  const trace = traceHeaders(req.headers);
  const api = /^\/api\/products\/(\d+)$/.exec(url.pathname);
  const page = /^\/products\/(\d+)$/.exec(url.pathname);
  const fail = (err: unknown) => sendJson(res, 502, { error: (err as Error).message });
  if (api) {
    productPage(Number(api[1]), user, trace).then((body) => sendJson(res, 200, body), fail);
  } else if (url.pathname === '/api/products') {
    grpcCall('ListProducts', Buffer.alloc(0), trace).then((b) => sendJson(res, 200, { products: decodeProductList(b) }), fail);
  } else if (url.pathname === '/' || page) {
    Promise.all([grpcCall('ListProducts', Buffer.alloc(0), trace).then(decodeProductList), page ? productPage(Number(page[1]), user, trace) : Promise.resolve(undefined)]).then(([products, shown]) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(html(products, shown));
    }, fail);
  } else {
    sendJson(res, 404, { error: 'try /, /products/ID, /api/products or /api/products/ID' });
  }
});
serve('web', server);
