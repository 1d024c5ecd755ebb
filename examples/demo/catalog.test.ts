// The demo's catalog speaks real gRPC: @grpc/grpc-js with catalog.proto calls the app (run as its own process), and
// the hand-written protobuf codec agrees with protobufjs byte for byte.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { closedPort } from '../../test/helpers/http.js';
import { decodeProduct, decodeProductList, encodeProduct, encodeProductId, frame, unframe } from './lib/grpc-wire.js';

const PROTO = fileURLToPath(new URL('../../../examples/demo/catalog.proto', import.meta.url));
const APP = fileURLToPath(new URL('./catalog.js', import.meta.url));

type Call<Req, Res> = (req: Req, cb: (err: grpc.ServiceError | null, res?: Res) => void) => void;
interface CatalogClient extends grpc.Client {
  ListProducts: Call<object, { products: Array<{ id: number; name: string; price_cents: number }> }>;
  GetProduct: Call<{ id: number }, { id: number; name: string; description: string; price_cents: number }>;
}

function call<Req, Res>(fn: Call<Req, Res>, client: grpc.Client, req: Req): Promise<Res> {
  return new Promise((resolve, reject) => fn.call(client, req, (err, res) => (err ? reject(err) : resolve(res as Res))));
}

test('a @grpc/grpc-js client with catalog.proto lists and gets products, and gets NOT_FOUND for a missing one', async (t) => {
  const port = await closedPort();
  const app = spawn(process.execPath, [APP], { env: { ...process.env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => app.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    app.stdout.setEncoding('utf8').on('data', (d: string) => d.includes('catalog listening') && resolve());
    app.once('exit', (code) => reject(new Error(`catalog exited (${code})`)));
  });
  const def = protoLoader.loadSync(PROTO, { keepCase: true, defaults: true });
  const Catalog = (grpc.loadPackageDefinition(def) as unknown as { mycel: { demo: { Catalog: new (addr: string, creds: grpc.ChannelCredentials) => CatalogClient } } }).mycel.demo.Catalog;
  const client = new Catalog(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  t.after(() => client.close());
  const list = await call(client.ListProducts, client, {});
  assert.equal(list.products.length, 4);
  assert.deepEqual(list.products.map((p) => p.id), [1, 2, 3, 4]);
  const one = await call(client.GetProduct, client, { id: 2 });
  assert.deepEqual({ id: one.id, name: one.name, price_cents: one.price_cents }, { id: 2, name: 'Spore print set', price_cents: 4500 });
  await assert.rejects(call(client.GetProduct, client, { id: 99 }), (err: grpc.ServiceError) => err.code === grpc.status.NOT_FOUND && /no product 99/.test(err.details));
});

test('the hand-written codec and protobufjs agree on every message', () => {
  const def = protoLoader.loadSync(PROTO, { keepCase: true });
  // protobufjs's serializers, reached through the service's method definitions.
  const methods = def['mycel.demo.Catalog'] as protoLoader.ServiceDefinition;
  const get = methods.GetProduct as protoLoader.MethodDefinition<object, object>;
  const list = methods.ListProducts as protoLoader.MethodDefinition<object, object>;
  const p = { id: 300, name: 'Hyphae socks ✓', description: 'Knitted.', priceCents: 1_000_000 };
  const ours = encodeProduct(p);
  const theirs = get.responseSerialize({ id: 300, name: 'Hyphae socks ✓', description: 'Knitted.', price_cents: 1_000_000 });
  assert.deepEqual(ours, theirs);
  assert.deepEqual(decodeProduct(theirs), p);
  const listed = list.responseSerialize({ products: [{ id: 1, name: 'a' }, { id: 2, name: 'b', price_cents: 5 }] });
  assert.deepEqual(decodeProductList(listed), [{ id: 1, name: 'a', description: '', priceCents: 0 }, { id: 2, name: 'b', description: '', priceCents: 5 }]);
  assert.deepEqual(encodeProductId(7), get.requestSerialize({ id: 7 }));
  assert.deepEqual(unframe(Buffer.concat([frame(ours), frame(Buffer.alloc(0))])), [ours, Buffer.alloc(0)]);
  assert.throws(() => unframe(frame(ours).subarray(0, 7)), /truncated/);
});
