// gRPC end to end: a @grpc/grpc-js client -> web sidecar -> mTLS -> api sidecar -> @grpc/grpc-js server, proving every
// call shape, status/trailers, metadata, deadlines, large messages, concurrency, and the mesh's own UNAVAILABLE.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closedPort, request } from '../helpers/http.js';
import { createHash, randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { ECHO_SERVICE, echoClient, startGrpcApp, unary, type EchoReply, type EchoRequest, type GrpcApp } from '../helpers/grpc-app.js';
import { startTwoSidecars, type TwoSidecars } from '../helpers/sidecars.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
type MethodDef = { path: string; requestSerialize: (v: never) => Buffer; responseDeserialize: (b: Buffer) => never };
const def = (name: string) => (ECHO_SERVICE as unknown as Record<string, MethodDef>)[name]!;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, reject) => (t = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}


describe('gRPC through two sidecars (api port declared grpc)', () => {
  let app: GrpcApp;
  let mesh: TwoSidecars;
  let client: grpc.Client;

  before(async () => {
    app = await startGrpcApp();
    mesh = await startTwoSidecars({ apiAppPort: app.port, apiProtocol: 'grpc' });
    client = echoClient(mesh.apiBinding);
  });
  after(async () => {
    client?.close();
    await mesh?.close();
    await app?.close();
  });

  test('unary call: request and response messages, metadata both ways (text and -bin), OK status and trailers', async () => {
    const md = new grpc.Metadata();
    md.set('x-from-client', 'client-value');
    md.set('x-client-bin', Buffer.from([9, 8, 7, 0, 255]));
    const r = await unary<EchoRequest, EchoReply>(client, 'Unary', { text: 'hello grpc' }, { metadata: md });
    assert.equal(r.error, null, String(r.error));
    assert.equal(r.status.code, grpc.status.OK);
    assert.equal(r.reply?.text, 'hello grpc');
    assert.equal(r.reply?.metadata?.['x-from-client'], 'client-value', 'client metadata reaches the server');
    assert.equal(r.reply?.metadata?.['x-client-bin'], Buffer.from([9, 8, 7, 0, 255]).toString('base64'), 'binary metadata reaches the server intact');
    assert.equal(r.reply?.metadata?.['x-mycel-peer-identity'], 'spiffe://mycel.local/ns/default/svc/web', 'the server sees the verified caller identity, as HTTP apps do');
    assert.deepEqual(r.headers?.get('x-initial-from-server'), ['hello-initial'], 'server initial metadata reaches the client');
    assert.deepEqual(r.status.metadata.get('x-trailer-from-server'), ['hello-trailer'], 'server trailing metadata reaches the client');
    assert.deepEqual(r.status.metadata.get('x-bin-bin'), [Buffer.from([0, 1, 2, 250])]);
  });

  test('server streaming: 1000 messages arrive complete and in order', async () => {
    const d = def('ServerStream');
    const got: number[] = [];
    const status = await withTimeout(
      new Promise<grpc.StatusObject>((resolve, reject) => {
        const call = client.makeServerStreamRequest(d.path, d.requestSerialize, d.responseDeserialize, { count: 1000 } as never);
        call.on('data', (m: EchoReply) => got.push(m.i ?? -1));
        call.on('error', reject);
        call.on('status', resolve);
      }),
      30_000,
      'server stream end',
    );
    assert.equal(status.code, grpc.status.OK);
    assert.equal(got.length, 1000);
    assert.ok(got.every((v, i) => v === i), 'messages arrive in order');
  });

  test('client streaming: 500 messages are summed by the server', async () => {
    const d = def('ClientStream');
    const reply = await withTimeout(
      new Promise<EchoReply>((resolve, reject) => {
        const call = client.makeClientStreamRequest(d.path, d.requestSerialize, d.responseDeserialize, (err: grpc.ServiceError | null, v?: EchoReply) => (err ? reject(err) : resolve(v!)));
        for (let i = 1; i <= 500; i++) call.write({ n: i } as never);
        call.end();
      }),
      30_000,
      'client stream reply',
    );
    assert.deepEqual(reply, { sum: (500 * 501) / 2, count: 500 });
  });

  test('bidi streaming: each reply arrives before the next request is sent (interleaved, not buffered to the end)', async () => {
    const d = def('Bidi');
    const call = client.makeBidiStreamRequest(d.path, d.requestSerialize, d.responseDeserialize);
    const replies: EchoReply[] = [];
    let waiting: ((m: EchoReply) => void) | null = null;
    call.on('data', (m: EchoReply) => {
      replies.push(m);
      waiting?.(m);
    });
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('error', () => {});
    for (let i = 0; i < 50; i++) {
      const next = new Promise<EchoReply>((r) => (waiting = r));
      call.write({ n: i, text: `ping ${i}` } as never);
      const m = await withTimeout(next, 10_000, `bidi reply ${i}`);
      assert.deepEqual(m, { i: i * 2, text: `ping ${i}` });
    }
    call.end();
    assert.equal((await withTimeout(status, 10_000, 'bidi status')).code, grpc.status.OK);
    assert.equal(replies.length, 50);
  });

  test('a non-OK status keeps its code, message and custom trailing metadata (NOT_FOUND with details)', async () => {
    const r = await unary<EchoRequest, EchoReply>(client, 'Fail', { text: 'widget-7' });
    assert.equal(r.status.code, grpc.status.NOT_FOUND);
    assert.equal(r.status.details, 'thing widget-7 not found');
    assert.equal(r.error?.code, grpc.status.NOT_FOUND);
    assert.deepEqual(r.status.metadata.get('x-failure-reason'), ['no such thing: widget-7']);
    assert.deepEqual(r.status.metadata.get('x-detail-bin'), [Buffer.from('binary-detail')]);
    assert.deepEqual(r.status.metadata.get('x-mycel-error'), [], 'an app status is not a mesh error');
    // The metrics of both sidecars read the status from the trailers: grpc_status="5" over HTTP 200.
    for (const [admin, direction] of [[mesh.web.admin, 'outbound'], [mesh.api.admin, 'inbound']] as const) {
      const text = (await request(admin, { path: '/metrics' })).body.toString();
      assert.match(text, new RegExp(`^mycel_requests_total\\{direction="${direction}",source_service="web",destination_service="api",route="",method="POST",status_code="200",grpc_status="5",retried="false"\\} [1-9]`, 'm'), direction);
    }
  });

  test('a non-OK status after streamed messages arrives in the trailers with its metadata (RESOURCE_EXHAUSTED)', async () => {
    const d = def('ServerStream');
    const got: number[] = [];
    const status = await withTimeout(
      new Promise<grpc.StatusObject>((resolve) => {
        const call = client.makeServerStreamRequest(d.path, d.requestSerialize, d.responseDeserialize, { count: 25, text: 'fail-after' } as never);
        call.on('data', (m: EchoReply) => got.push(m.i ?? -1));
        call.on('error', () => {});
        call.on('status', resolve);
      }),
      15_000,
      'stream status',
    );
    assert.equal(got.length, 25, 'the messages before the failure were delivered');
    assert.equal(status.code, grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(status.details, 'gave up after 25 messages');
    assert.deepEqual(status.metadata.get('x-sent-before-failure'), ['25']);
  });

  test('compressed messages (grpc-encoding gzip) pass through', async () => {
    // The request frames carry the compressed flag: had the mesh dropped grpc-encoding, the server would fail the call.
    const gz = echoClient(mesh.apiBinding, { 'grpc.default_compression_algorithm': grpc.compressionAlgorithms.gzip });
    try {
      const text = 'squeeze '.repeat(20_000);
      const r = await withTimeout(unary<EchoRequest, EchoReply>(gz, 'Unary', { text }), 15_000, 'gzip call');
      assert.equal(r.status.code, grpc.status.OK, r.status.details);
      assert.equal(r.reply?.text, text);
    } finally {
      gz.close();
    }
  });

  test('deadline: grpc-timeout reaches the server, and a slow handler yields DEADLINE_EXCEEDED at the client', async () => {
    const before = app.slowCalls.length;
    const deadline = new Date(Date.now() + 800);
    const r = await withTimeout(unary<EchoRequest, EchoReply>(client, 'Slow', { delayMs: 20_000 }, { deadline }), 15_000, 'deadline status');
    assert.equal(r.status.code, grpc.status.DEADLINE_EXCEEDED, `status ${r.status.code} ${r.status.details}`);
    assert.equal(app.slowCalls.length, before + 1, 'the call reached the server');
    const seen = app.slowCalls[before]!;
    const serverDeadline = Number(seen.deadline);
    assert.ok(Number.isFinite(serverDeadline), `the server saw a deadline (grpc-timeout header), got ${seen.deadline}`);
    // Same clock: the server's deadline can only be at or before the client's (minus transit), never unbounded.
    assert.ok(serverDeadline <= deadline.getTime() + 1000, `server deadline ${serverDeadline} is not after the client deadline ${deadline.getTime()}`);
    await withTimeout(seen.cancelled, 10_000, 'server-side cancellation of the expired call');
  });

  test('a client cancel reaches the server as a cancelled call, and the client sees CANCELLED', async () => {
    const d = def('Slow');
    const arrived = app.nextSlowCall();
    let status: grpc.StatusObject | null = null;
    const done = new Promise<void>((resolve) => {
      const call = client.makeUnaryRequest(d.path, d.requestSerialize, d.responseDeserialize, { delayMs: 20_000 } as never, () => {});
      call.on('status', (s: grpc.StatusObject) => {
        status = s;
        resolve();
      });
      void arrived.then(() => call.cancel());
    });
    const seen = await withTimeout(arrived, 10_000, 'the call reaching the server');
    await withTimeout(seen.cancelled, 10_000, 'server-side cancellation after the client cancelled');
    await withTimeout(done, 10_000, 'client status');
    assert.equal(status!.code, grpc.status.CANCELLED);
  });

  test('large messages: 4 MiB request and 4 MiB response pass intact', async () => {
    const payload = randomBytes(4 * 1024 * 1024);
    const r = await withTimeout(unary<Buffer, Buffer>(client, 'Big', payload), 60_000, 'big call');
    assert.equal(r.error, null, String(r.error));
    assert.deepEqual(r.status.metadata.get('x-request-sha256'), [sha(payload)], 'the server received the 4 MiB request intact');
    assert.equal(r.reply?.length, payload.length);
    assert.equal(sha(r.reply!), sha(Buffer.from(payload).reverse()), 'the client received the 4 MiB response intact');
  });

  test('200 concurrent unary calls on one channel are all answered correctly', async () => {
    const results = await withTimeout(
      Promise.all(Array.from({ length: 200 }, (_, i) => unary<EchoRequest, EchoReply>(client, 'Unary', { text: `call ${i}` }))),
      60_000,
      '200 concurrent calls',
    );
    results.forEach((r, i) => {
      assert.equal(r.status.code, grpc.status.OK, `call ${i}: ${r.status.details}`);
      assert.equal(r.reply?.text, `call ${i}`);
    });
  });

  test('a gRPC client can also use Host routing on the outbound listener (:authority api)', async () => {
    const viaOutbound = echoClient(mesh.web.outbound, { 'grpc.default_authority': 'api' });
    try {
      const r = await withTimeout(unary<EchoRequest, EchoReply>(viaOutbound, 'Unary', { text: 'by authority' }), 15_000, 'unary via outbound');
      assert.equal(r.status.code, grpc.status.OK, r.status.details);
      assert.equal(r.reply?.text, 'by authority');
      assert.equal(r.reply?.metadata?.[':authority'], undefined);
    } finally {
      viaOutbound.close();
    }
  });
});

describe('gRPC errors made by the mesh (the app behind api is down, or no such service)', () => {
  let mesh: TwoSidecars;
  let client: grpc.Client;

  before(async () => {
    mesh = await startTwoSidecars({ apiAppPort: await closedPort(), apiProtocol: 'grpc' });
    client = echoClient(mesh.apiBinding);
  });
  after(async () => {
    client?.close();
    await mesh?.close();
  });

  test('the call fails with UNAVAILABLE from the mesh and trailing metadata x-mycel-error: connect-failed', async () => {
    const r = await withTimeout(unary<EchoRequest, EchoReply>(client, 'Unary', { text: 'anyone?' }), 20_000, 'status from the mesh');
    assert.equal(r.status.code, grpc.status.UNAVAILABLE, `status ${r.status.code} ${r.status.details}`);
    assert.deepEqual(r.status.metadata.get('x-mycel-error'), ['connect-failed']);
    assert.match(r.status.details, /mycel/, 'the message says the mesh made this status');
  });

  test('the status message the mesh makes reaches grpc-js as plain text (grpc-message percent-encoded per the gRPC spec)', async () => {
    // PROTOCOL-HTTP2: only bytes outside 0x20-0x7E and '%' itself are percent-encoded. grpc-js decodes with decodeURI,
    // so over-encoded reserved characters such as ':' or '/' would reach the user as '%3A' or '%2F'.
    const r = await withTimeout(unary<EchoRequest, EchoReply>(client, 'Unary', { text: 'anyone?' }), 20_000, 'status from the mesh');
    assert.equal(r.status.code, grpc.status.UNAVAILABLE);
    assert.match(r.status.details, /^mycel api: /, `the message names the proxy that made it: ${r.status.details}`);
    assert.doesNotMatch(r.status.details, /%[0-9A-Fa-f]{2}/, `the status message reads as plain text: ${r.status.details}`);
  });

  test('a call to an unknown service on the outbound listener fails with UNAVAILABLE and x-mycel-error: unknown-service', async () => {
    const stray = echoClient(mesh.web.outbound, { 'grpc.default_authority': 'no-such-service' });
    try {
      const r = await withTimeout(unary<EchoRequest, EchoReply>(stray, 'Unary', { text: 'hello?' }), 20_000, 'status from the mesh');
      assert.equal(r.status.code, grpc.status.UNAVAILABLE, `status ${r.status.code} ${r.status.details}`);
      assert.deepEqual(r.status.metadata.get('x-mycel-error'), ['unknown-service']);
    } finally {
      stray.close();
    }
  });
});
