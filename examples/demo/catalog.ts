// The demo's "catalog" service (gRPC, mycel.demo.Catalog in catalog.proto): ListProducts and GetProduct over h2c,
// with the gRPC framing, status trailers and trailers-only errors that any gRPC client expects.

import http2, { type ServerHttp2Stream } from 'node:http2';
import { decodeProductId, encodeProduct, encodeProductList, frame, unframe, type Product } from './lib/grpc-wire.js';
import { serve } from './lib/serve.js';

const PRODUCTS: readonly Product[] = [
  { id: 1, name: 'Mycelium starter kit', description: 'Everything to grow your first mesh.', priceCents: 2900 },
  { id: 2, name: 'Spore print set', description: 'Six prints, framed, for the lab wall.', priceCents: 4500 },
  { id: 3, name: 'Forest floor field guide', description: 'Three hundred species, one pocket.', priceCents: 1900 },
  { id: 4, name: 'Hyphae socks', description: 'Knitted, networked, warm.', priceCents: 1200 },
];

const OK = 0;
const NOT_FOUND = 5;
const UNIMPLEMENTED = 12;
const INTERNAL = 13;

function status(stream: ServerHttp2Stream, code: number, message: string): void {
  // Trailers-only: the status travels in the one HEADERS frame that ends the stream.
  stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(code), 'grpc-message': encodeURIComponent(message) }, { endStream: true });
}

function reply(stream: ServerHttp2Stream, message: Buffer): void {
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
  stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': String(OK) }));
  stream.end(frame(message));
}

const server = http2.createServer();
server.on('stream', (stream, headers) => {
  const path = String(headers[':path']);
  if (!String(headers['content-type'] ?? '').startsWith('application/grpc')) {
    stream.respond({ ':status': 415, 'content-type': 'text/plain' });
    stream.end('the catalog speaks gRPC: content-type application/grpc\n');
    return;
  }
  const chunks: Buffer[] = [];
  stream.on('data', (d: Buffer) => chunks.push(d));
  stream.on('error', () => {});
  stream.on('end', () => {
    let messages: Buffer[];
    try {
      messages = unframe(Buffer.concat(chunks));
    } catch (err) {
      return status(stream, INTERNAL, (err as Error).message);
    }
    if (path === '/mycel.demo.Catalog/ListProducts') return reply(stream, encodeProductList(PRODUCTS));
    if (path === '/mycel.demo.Catalog/GetProduct') {
      const id = decodeProductId(messages[0] ?? Buffer.alloc(0));
      const p = PRODUCTS.find((x) => x.id === id);
      return p === undefined ? status(stream, NOT_FOUND, `no product ${id}`) : reply(stream, encodeProduct(p));
    }
    status(stream, UNIMPLEMENTED, `unknown method ${path}`);
  });
});

serve('catalog', server);
