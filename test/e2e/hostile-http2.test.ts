// Hostile HTTP/2 clients at the frame level (test/helpers/h2-frames.ts), against the web sidecar's h2c prior-knowledge
// entry and the api sidecar's mTLS inbound (ALPN h2): rapid reset, CONTINUATION, SETTINGS and PING floods are cut off
// or absorbed with bounded memory; stream limits, header limits, invalid frames and malformed or connection-specific
// headers are refused with the right RST_STREAM / GOAWAY code and never reach the app; uploads cut off mid-body never
// reach the app as complete requests; after every attack node:http2 still works through both entries.

import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type tls from 'node:tls';
import { startH2App, type TestApp } from '../helpers/apps.js';
import { startTwoSidecars, type TwoSidecars } from '../helpers/sidecars.js';
import { encodeHeaderBlock } from '../helpers/hpack.js';
import { E, F, H2FrameClient, S, T, errorName, frame, headerValue, requestHeaders, settingsPayload, u32, type H2ConnectOptions } from '../helpers/h2-frames.js';
import { isAlive, meshClientTls, rssMb, sampleRss, sleep, startTap, type Tap } from '../helpers/raw-http.js';

const LIMITS = { maxConcurrentStreams: 10, maxHeaderBytes: 4096, maxHeaderCount: 20 };
const AUTHORITY = 'api';
/**
 * Node's HTTP/2 server stops reading after it sends a connection-error GOAWAY but does not close the socket, and
 * gives Mycel no event to act on; the idle timeout then closes it. A short clientIdle bounds that linger here.
 */
const CLIENT_IDLE_S = 2;

interface Entry {
  name: string;
  addr: string;
  pid: () => number;
  connect: H2ConnectOptions;
}

describe('hostile HTTP/2 input', () => {
  let app: TestApp;
  let tap: Tap;
  let mesh: TwoSidecars;
  let clientTls: tls.ConnectionOptions;
  let entries: Entry[];
  const open: H2FrameClient[] = [];

  before(async () => {
    app = await startH2App();
    tap = await startTap(app.port);
    mesh = await startTwoSidecars({
      apiAppPort: tap.port,
      apiProtocol: 'http2',
      meshSpec: `limits: { maxConcurrentStreams: ${LIMITS.maxConcurrentStreams}, maxHeaderBytes: ${LIMITS.maxHeaderBytes}, maxHeaderCount: ${LIMITS.maxHeaderCount} }\ntimeouts: { clientIdle: ${CLIENT_IDLE_S}s }`,
    });
    clientTls = await meshClientTls(mesh.dir, 'web', ['h2']);
    const split = (a: string) => ({ host: a.slice(0, a.lastIndexOf(':')), port: Number(a.slice(a.lastIndexOf(':') + 1)) });
    entries = [
      { name: 'web outbound (h2c prior knowledge)', addr: mesh.web.outbound, pid: () => mesh.web.proc.pid!, connect: split(mesh.web.outbound) },
      { name: 'api inbound (mTLS, ALPN h2)', addr: mesh.api.inbound, pid: () => mesh.api.proc.pid!, connect: { ...split(mesh.api.inbound), tls: clientTls } },
    ];
  });
  after(async () => {
    for (const c of open) c.destroy();
    await mesh?.close();
    await tap?.close();
    await app?.close();
  });
  afterEach(() => {
    for (const c of open.splice(0)) c.destroy();
    assert.ok(isAlive(mesh.web.proc.pid!), `the web sidecar is alive; its last log lines:\n${mesh.web.logs.slice(-12).join('\n')}`);
    assert.ok(isAlive(mesh.api.proc.pid!), `the api sidecar is alive; its last log lines:\n${mesh.api.logs.slice(-12).join('\n')}`);
  });

  async function client(e: Entry, settings: ReadonlyArray<readonly [number, number]> = []): Promise<H2FrameClient> {
    const c = await H2FrameClient.open(e.connect, settings);
    open.push(c);
    return c;
  }

  /** A normal request with node:http2 through the entry. */
  async function h2Get(e: Entry, path: string): Promise<{ status: number; body: string; headers: http2.IncomingHttpHeaders }> {
    const session = e.connect.tls ? http2.connect(`https://${e.addr}`, { ...clientTls }) : http2.connect(`http://${e.addr}`);
    try {
      return await new Promise((resolve, reject) => {
        session.on('error', reject);
        const req = session.request({ ':path': path, ':authority': AUTHORITY });
        req.setTimeout(10_000, () => req.close(http2.constants.NGHTTP2_CANCEL));
        let body = '';
        let headers: http2.IncomingHttpHeaders = {};
        req.on('response', (h) => (headers = h));
        req.setEncoding('utf8');
        req.on('data', (d: string) => (body += d));
        req.on('end', () => resolve({ status: Number(headers[':status']), body, headers }));
        req.on('error', reject);
        req.end();
      });
    } finally {
      session.destroy();
    }
  }

  async function assertHealthy(): Promise<void> {
    for (const e of entries) {
      const r = await h2Get(e, '/hello?healthy');
      assert.equal(r.status, 200, `${e.name}: ${r.body}`);
      assert.equal(r.body, 'hello h2 GET /hello?healthy bytes=0\n');
    }
    assert.ok(isAlive(mesh.web.proc.pid!) && isAlive(mesh.api.proc.pid!));
  }

  const reachedApp = (prefix: string) => app.seen.filter((s) => s.url.startsWith(prefix)).map((s) => s.url);

  test('baseline: node:http2 and the frame-level client both get answers through each entry', async () => {
    await assertHealthy();
    for (const e of entries) {
      const c = await client(e);
      c.headers(1, requestHeaders(AUTHORITY, '/hello?frames'));
      const r = await c.waitStream(1);
      assert.equal(r?.status, 200, `${e.name}: ${JSON.stringify(r)}`);
      assert.equal(r?.data.toString(), 'hello h2 GET /hello?frames bytes=0\n');
    }
  });

  for (const ei of [0, 1]) {
    const where = () => entries[ei]!;
    const tag = ei === 0 ? '[web h2c]' : '[api inbound h2]';

    test(`rapid reset: 5000 streams opened and cancelled at once end in GOAWAY or close, the sidecar stays healthy ${tag}`, async () => {
      const e = where();
      const base = rssMb(e.pid());
      const rss = sampleRss([e.pid()]);
      const seen0 = app.seen.length;
      const c = await client(e);
      const n = 5000;
      const written = await c.flood(n, (i) => {
        const id = 1 + 2 * i;
        return Buffer.concat([frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, id, encodeHeaderBlock(requestHeaders(AUTHORITY, `/rapid-reset/${i}`))), frame(T.RST_STREAM, 0, id, u32(E.CANCEL))]);
      }, { batch: 50, deadlineMs: 15_000, stopOnGoaway: false });
      const g = await c.waitFor((f) => f.type === T.GOAWAY, 5000);
      const closed = await c.waitClosed(1000);
      const maxRss = rss.stop();
      await sleep(200);
      const reached = app.seen.length - seen0;
      assert.ok(g !== null || closed, `the connection ended in GOAWAY or close (wrote ${written} of ${n} stream pairs, ${reached} reached the app)`);
      assert.ok(maxRss < base + 100, `RSS grew by less than 100 MB (from ${base.toFixed(0)} to ${maxRss.toFixed(0)} MB)`);
      note(`rapid reset ${tag}: wrote ${written}, GOAWAY ${c.goaway ? errorName(c.goaway.code) : 'none'}, ${reached} requests reached the app`);
      await assertHealthy();
    });

    for (const variant of ['with header bytes', 'empty'] as const) {
      test(`CONTINUATION flood (HEADERS without END_HEADERS, then endless CONTINUATION frames, ${variant}) is cut off ${tag}`, async () => {
        const e = where();
        const base = rssMb(e.pid());
        const rss = sampleRss([e.pid()]);
        const c = await client(e);
        c.headers(1, requestHeaders(AUTHORITY, '/continuation-flood'), { endStream: true, endHeaders: false });
        const block = variant === 'empty' ? Buffer.alloc(0) : encodeHeaderBlock([['x-flood', 'c'.repeat(200)]]);
        const total = variant === 'empty' ? 200_000 : 100_000;
        const written = await c.flood(total, () => frame(T.CONTINUATION, 0, 1, block), { batch: 200, deadlineMs: 10_000 });
        const ended = (await c.waitFor((f) => f.type === T.GOAWAY || (f.type === T.RST_STREAM && f.streamId === 1), 5000)) !== null || (await c.waitClosed(3000));
        const maxRss = rss.stop();
        assert.ok(ended, `the flood was cut off (GOAWAY, RST_STREAM or close); wrote ${written} of ${total} CONTINUATION frames, server sent ${[...c.counts].map(([t, n]) => `${t}x${n}`).join(' ')}`);
        assert.ok(written < total, `cut before the client finished (${written} of ${total} written)`);
        assert.ok(maxRss < base + 64, `RSS grew by less than 64 MB (from ${base.toFixed(0)} to ${maxRss.toFixed(0)} MB)`);
        assert.deepEqual(reachedApp('/continuation-flood'), []);
        await assertHealthy();
      });
    }

    for (const kind of ['SETTINGS', 'PING'] as const) {
      test(`${kind} flood (20000 frames, client not reading) is cut off or answered with bounded memory ${tag}`, async () => {
        const e = where();
        const base = rssMb(e.pid());
        const rss = sampleRss([e.pid()]);
        const c = await client(e);
        c.socket.pause();
        const n = 20_000;
        const payload = kind === 'SETTINGS' ? settingsPayload([[S.INITIAL_WINDOW_SIZE, 65_535]]) : Buffer.alloc(8, 7);
        const written = await c.flood(n, () => frame(kind === 'SETTINGS' ? T.SETTINGS : T.PING, 0, 0, payload), { batch: 500, deadlineMs: 10_000 });
        await sleep(300);
        c.socket.resume();
        const ackType = kind === 'SETTINGS' ? T.SETTINGS : T.PING;
        // Either the server gave up on us (GOAWAY / close), or it answered every frame.
        const deadline = Date.now() + 8000;
        while (Date.now() < deadline && !c.closed && c.goaway === null && c.frames.filter((f) => f.type === ackType && f.flags & F.ACK).length < written) await sleep(50);
        const acks = c.frames.filter((f) => f.type === ackType && f.flags & F.ACK).length;
        const maxRss = rss.stop();
        assert.ok(c.closed || c.goaway !== null || acks >= written, `cut off or answered: wrote ${written}, got ${acks} ACKs, goaway=${c.goaway ? errorName(c.goaway.code) : 'none'}, closed=${c.closed}`);
        assert.ok(maxRss < base + 64, `RSS grew by less than 64 MB (from ${base.toFixed(0)} to ${maxRss.toFixed(0)} MB)`);
        await assertHealthy();
      });
    }

    test(`streams beyond MAX_CONCURRENT_STREAMS (${LIMITS.maxConcurrentStreams}) are refused and reach nothing; the unfinished ones never reach the app as complete ${tag}`, async () => {
      const e = where();
      const c = await client(e);
      const srvSettings = c.frames.find((f) => f.type === T.SETTINGS && (f.flags & F.ACK) === 0)!;
      assert.equal(readSetting(srvSettings.payload, S.MAX_CONCURRENT_STREAMS), LIMITS.maxConcurrentStreams, 'the sidecar advertises the configured limit');
      await sleep(50); // our SETTINGS ACK went first: the limit is in force
      // Fill the limit with uploads that never finish (HEADERS without END_STREAM, one DATA frame, no end).
      const held: number[] = [];
      for (let i = 0; i < LIMITS.maxConcurrentStreams; i++) {
        const id = 1 + 2 * i;
        held.push(id);
        c.headers(id, requestHeaders(AUTHORITY, `/held/${ei}/${i}`, 'POST'), { endStream: false });
        c.data(id, Buffer.from('part'), false);
      }
      await sleep(300); // they are forwarded to the app and wait there for their bodies
      const extra: number[] = [];
      for (let i = 0; i < 5; i++) {
        const id = 1 + 2 * (LIMITS.maxConcurrentStreams + i);
        extra.push(id);
        c.headers(id, requestHeaders(AUTHORITY, `/extra/${ei}/${i}`));
      }
      await c.waitFor((f) => (f.type === T.RST_STREAM && extra.includes(f.streamId)) || f.type === T.GOAWAY, 3000);
      await sleep(500);
      const ended = c.closed || c.goaway !== null;
      const extraOutcome = extra.map((id) => {
        const st = c.streams.get(id);
        return st?.reset != null ? errorName(st.reset) : st?.status != null ? `answered ${st.status}` : ended ? 'connection ended' : 'no answer';
      });
      assert.ok(
        extraOutcome.every((o) => o === 'REFUSED_STREAM' || o === 'PROTOCOL_ERROR' || o === 'connection ended'),
        `each stream over the limit is refused (RST_STREAM REFUSED_STREAM/PROTOCOL_ERROR, or the connection is torn down): ${extraOutcome.join(', ')}; GOAWAY ${c.goaway ? errorName(c.goaway.code) : 'none'}`,
      );
      assert.deepEqual(reachedApp(`/extra/${ei}/`), [], 'no stream over the limit reached the app');
      // The held uploads never sent END_STREAM: whatever happened to them, the app must not get them as complete.
      if (!ended) for (const id of held) c.rst(id, E.CANCEL);
      c.destroy();
      await sleep(500);
      assert.deepEqual(reachedApp(`/held/${ei}/`), [], 'unfinished uploads reached the app as complete requests (truncated bodies)');
      await assertHealthy();
    });

    test(`a header list larger than maxHeaderBytes (${LIMITS.maxHeaderBytes}) is refused and never reaches the app ${tag}`, async () => {
      const e = where();
      const c = await client(e);
      c.headers(1, requestHeaders(AUTHORITY, '/too-big', 'GET', [['x-big', 'b'.repeat(LIMITS.maxHeaderBytes * 2)]]));
      const r = await c.waitStream(1, 5000);
      const refused = c.goaway !== null || r?.reset != null || (r?.status === 431 && headerValue(r.headers, 'x-mycel-error') === 'header-too-large');
      assert.ok(refused, `refused with RST_STREAM, GOAWAY or 431 header-too-large: ${JSON.stringify({ status: r?.status, reset: r?.reset, goaway: c.goaway })}`);
      await sleep(200);
      assert.deepEqual(reachedApp('/too-big'), []);
      await assertHealthy();
    });

    for (const count of [LIMITS.maxHeaderCount + 5, LIMITS.maxHeaderCount + 30]) {
      test(`${count} header fields (limit ${LIMITS.maxHeaderCount}) are refused and never reach the app ${tag}`, async () => {
        const e = where();
        const c = await client(e);
        const fields = Array.from({ length: count }, (_, i) => [`x-f${i}`, 'v'] as const);
        c.headers(1, requestHeaders(AUTHORITY, `/many-fields/${count}`, 'GET', fields));
        const r = await c.waitStream(1, 5000);
        const refused = c.goaway !== null || r?.reset != null || (r?.status === 431 && headerValue(r.headers, 'x-mycel-error') === 'header-too-large');
        assert.ok(refused, `refused with RST_STREAM, GOAWAY or 431 header-too-large: ${JSON.stringify({ status: r?.status, error: headerValue(r?.headers ?? null, 'x-mycel-error'), reset: r?.reset, goaway: c.goaway })}`);
        await sleep(200);
        assert.deepEqual(reachedApp(`/many-fields/${count}`), []);
      });
    }

    const invalidGroups: Array<{ name: string; frames: Array<{ name: string; bytes: () => Buffer; code: number }> }> = [
      {
        name: 'DATA on stream 0 -> GOAWAY PROTOCOL_ERROR',
        frames: [{ name: 'DATA on stream 0', bytes: () => frame(T.DATA, 0, 0, Buffer.from('hello')), code: E.PROTOCOL_ERROR }],
      },
      {
        name: 'bad frame sizes -> GOAWAY FRAME_SIZE_ERROR',
        frames: [
          { name: 'PING with a 7-byte payload', bytes: () => frame(T.PING, 0, 0, Buffer.alloc(7)), code: E.FRAME_SIZE_ERROR },
          { name: 'SETTINGS with a 5-byte payload', bytes: () => frame(T.SETTINGS, 0, 0, Buffer.alloc(5)), code: E.FRAME_SIZE_ERROR },
          { name: 'SETTINGS ACK with a payload', bytes: () => frame(T.SETTINGS, F.ACK, 0, settingsPayload([[S.INITIAL_WINDOW_SIZE, 1]])), code: E.FRAME_SIZE_ERROR },
          { name: 'WINDOW_UPDATE with a 3-byte payload', bytes: () => frame(T.WINDOW_UPDATE, 0, 0, Buffer.alloc(3)), code: E.FRAME_SIZE_ERROR },
          { name: 'a frame larger than SETTINGS_MAX_FRAME_SIZE', bytes: () => frame(T.DATA, 0, 1, Buffer.alloc(16_385)), code: E.FRAME_SIZE_ERROR },
        ],
      },
      {
        name: 'other connection errors -> GOAWAY with the RFC 9113 error code',
        frames: [
          { name: 'HEADERS on stream 0', bytes: () => frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 0, encodeHeaderBlock(requestHeaders(AUTHORITY, '/stream-zero'))), code: E.PROTOCOL_ERROR },
          { name: 'HEADERS on an even (server-initiated) stream id', bytes: () => frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 2, encodeHeaderBlock(requestHeaders(AUTHORITY, '/even-stream'))), code: E.PROTOCOL_ERROR },
          { name: 'WINDOW_UPDATE with a zero increment on stream 0', bytes: () => frame(T.WINDOW_UPDATE, 0, 0, u32(0)), code: E.PROTOCOL_ERROR },
          { name: 'RST_STREAM on an idle stream', bytes: () => frame(T.RST_STREAM, 0, 99, u32(E.CANCEL)), code: E.PROTOCOL_ERROR },
          { name: 'CONTINUATION without HEADERS', bytes: () => frame(T.CONTINUATION, F.END_HEADERS, 1, encodeHeaderBlock([['x-a', 'b']])), code: E.PROTOCOL_ERROR },
          { name: 'SETTINGS.INITIAL_WINDOW_SIZE above 2^31-1', bytes: () => frame(T.SETTINGS, 0, 0, settingsPayload([[S.INITIAL_WINDOW_SIZE, 0x80000000]])), code: E.FLOW_CONTROL_ERROR },
          { name: 'SETTINGS_ENABLE_PUSH = 2', bytes: () => frame(T.SETTINGS, 0, 0, settingsPayload([[2, 2]])), code: E.PROTOCOL_ERROR },
          { name: 'an HPACK index beyond the tables', bytes: () => frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, Buffer.from([0x82, 0x86, 0xff, 0x7f])), code: E.COMPRESSION_ERROR },
        ],
      },
    ];
    for (const group of invalidGroups) {
      test(`invalid frames: ${group.name}, and the connection is closed within the idle timeout ${tag}`, async () => {
        const e = where();
        // One connection per frame, all at once (each waits up to 3 s for the close).
        const problems = await Promise.all(
          group.frames.map(async (inv) => {
            const c = await client(e);
            c.write(inv.bytes());
            const g = await c.waitFor((f) => f.type === T.GOAWAY, 3000);
            const closed = await c.waitClosed((CLIENT_IDLE_S + 2) * 1000);
            const out: string[] = [];
            if (g === null) out.push(`${inv.name}: no GOAWAY (closed=${closed})`);
            // nghttp2 as bundled with Node answers some of these with INTERNAL_ERROR where RFC 9113 names a more
            // specific code; the connection error itself is what protects the sidecar, so either code is accepted.
            else if (c.goaway!.code !== inv.code && c.goaway!.code !== E.INTERNAL_ERROR) out.push(`${inv.name}: GOAWAY ${errorName(c.goaway!.code)}, want ${errorName(inv.code)}`);
            if (!closed) out.push(`${inv.name}: the connection is still open ${CLIENT_IDLE_S + 2} s after the GOAWAY (the idle timeout is ${CLIENT_IDLE_S} s)`);
            return out;
          }),
        );
        assert.deepEqual(problems.flat(), []);
        assert.deepEqual(reachedApp('/stream-zero'), []);
        assert.deepEqual(reachedApp('/even-stream'), []);
      });
    }

    for (const how of ['RST_STREAM CANCEL', 'connection closed'] as const) {
      test(`an upload cut off mid-body (${how}) never reaches the app as a complete request ${tag}`, async () => {
        const e = where();
        const c = await client(e);
        const path = `/echo?cut-${ei}-${how.replace(/ /g, '-')}`;
        c.headers(1, requestHeaders(AUTHORITY, path, 'POST'), { endStream: false });
        c.data(1, Buffer.from('partial-body'), false);
        await sleep(300);
        if (how === 'RST_STREAM CANCEL') c.rst(1, E.CANCEL);
        else c.destroy();
        await sleep(500);
        const complete = app.seen.filter((s) => s.url === path).map((s) => `${s.method} ${s.url} (${s.bodyBytes} body bytes, ended cleanly)`);
        assert.deepEqual(complete, [], 'the app got the truncated upload as a complete request');
      });
    }

    test(`connection-specific and malformed request headers get a stream error and never reach the app ${tag}`, async () => {
      const e = where();
      const bad: Array<{ name: string; extra?: Array<[string, string]>; list?: Array<[string, string]> }> = [
        { name: 'connection: keep-alive', extra: [['connection', 'keep-alive']] },
        { name: 'transfer-encoding: chunked', extra: [['transfer-encoding', 'chunked']] },
        { name: 'keep-alive: 5', extra: [['keep-alive', 'timeout=5']] },
        { name: 'proxy-connection: keep-alive', extra: [['proxy-connection', 'keep-alive']] },
        { name: 'upgrade: websocket', extra: [['upgrade', 'websocket']] },
        { name: 'te: gzip', extra: [['te', 'gzip']] },
        { name: 'an upper-case header name', extra: [['X-Upper', 'v']] },
        { name: 'a pseudo-header after a regular one', list: [[':method', 'GET'], [':scheme', 'http'], [':authority', AUTHORITY], ['x-a', 'b'], [':path', '/malformed/pseudo-after']] },
        { name: 'an unknown pseudo-header', extra: [[':foo', 'bar']] },
        { name: 'two :path pseudo-headers', list: [[':method', 'GET'], [':scheme', 'http'], [':authority', AUTHORITY], [':path', '/malformed/dup-path'], [':path', '/malformed/dup-path-2']] },
        { name: 'no :path', list: [[':method', 'GET'], [':scheme', 'http'], [':authority', AUTHORITY]] },
      ];
      const c = await client(e);
      const outcome: string[] = [];
      for (let i = 0; i < bad.length; i++) {
        const b = bad[i]!;
        const id = 1 + 2 * i;
        c.headers(id, b.list ?? requestHeaders(AUTHORITY, `/malformed/${i}`, 'GET', b.extra ?? []));
        const r = await c.waitStream(id, 3000);
        const ok = r?.reset != null || (r?.status === 400 && headerValue(r.headers, 'x-mycel-error') === 'bad-request');
        if (!ok) outcome.push(`${b.name}: ${c.goaway ? `GOAWAY ${errorName(c.goaway.code)}` : `status=${r?.status} reset=${r?.reset == null ? 'none' : errorName(r.reset)}`}`);
        if (c.closed || c.goaway !== null) break;
      }
      assert.deepEqual(outcome, [], 'each malformed request gets RST_STREAM (or a 400 bad-request) on a connection that stays up');
      await sleep(300);
      assert.deepEqual(reachedApp('/malformed/'), [], 'none reached the app');
      await assertHealthy();
    });

    for (const timing of ['all at once', 'END_STREAM later'] as const) {
      test(`a body shorter than its content-length (${timing}) gets a stream error and never reaches the app as complete ${tag}`, async () => {
        const e = where();
        const c = await client(e);
        const path = `/echo?short-body-${ei}-${timing.replace(/ /g, '-')}`;
        c.headers(1, requestHeaders(AUTHORITY, path, 'POST', [['content-length', '10']]), { endStream: false });
        if (timing === 'all at once') {
          c.data(1, Buffer.from('abc'), true);
        } else {
          c.data(1, Buffer.from('abc'), false);
          await sleep(300); // the head and the first bytes are on their way to the app
          c.data(1, Buffer.alloc(0), true); // END_STREAM after 3 of 10 bytes
        }
        const r = await c.waitStream(1, 3000);
        assert.ok(r?.reset != null || r?.status === 400, `stream error (RST_STREAM) or 400: ${JSON.stringify({ status: r?.status, reset: r?.reset })}`);
        await sleep(300);
        const complete = app.seen.filter((s) => s.url === path).map((s) => `${s.method} ${s.url} (${s.bodyBytes} of 10 body bytes, ended cleanly)`);
        assert.deepEqual(complete, [], 'the app got the short body as a complete request');
      });
    }

    // RFC 9113 8.2.1 asks for a stream error here. Node's HTTP/2 layer drops such a field before Mycel sees the
    // request (its nghttp2 invalid-header callback ignores it), so the request goes on without it: what Mycel can
    // and does guarantee is that the field, and anything it tried to inject, never reaches the app.
    test(`header fields with CR, LF or NUL in the value or a space in the name never reach the app ${tag}`, async () => {
      const e = where();
      const c = await client(e);
      const bad: Array<[string, string, string]> = [
        ['CRLF in a value', 'x-crlf', 'b\r\nx-injected: 1'],
        ['LF in a value', 'x-lf', 'a\nGET /smuggled HTTP/1.1'],
        ['NUL in a value', 'x-nul', 'b\u0000c'],
        ['a space in a name', 'x sp', 'v'],
      ];
      const notRefused: string[] = [];
      for (let i = 0; i < bad.length; i++) {
        const [what, name, value] = bad[i]!;
        const id = 1 + 2 * i;
        c.headers(id, requestHeaders(AUTHORITY, `/bad-field/${ei}/${i}`, 'GET', [[name, value]]));
        const r = await c.waitStream(id, 3000);
        if (!(r?.reset != null || r?.status === 400 || r?.status === 200)) notRefused.push(`${what}: status=${r?.status} reset=${r?.reset == null ? 'none' : errorName(r.reset)}`);
        if (c.closed || c.goaway !== null) break;
      }
      await sleep(200);
      const delivered = app.seen.filter((s) => s.url.startsWith(`/bad-field/${ei}/`));
      const leaked = delivered.flatMap((s) => Object.entries(s.headers).filter(([n, v]) => n.includes(' ') || /[\r\n\u0000]/.test(String(v)) || n.startsWith('x-injected')).map(([n]) => `${s.url}: ${n}`));
      assert.deepEqual(leaked, [], 'no invalid field (nor an injected one) reached the app');
      assert.deepEqual(notRefused, [], 'each request is refused, or answered without the field');
    });
  }

  test('after every attack both sidecars are alive and answer', async () => {
    await assertHealthy();
  });
});


function readSetting(payload: Buffer, id: number): number | undefined {
  for (let p = 0; p + 6 <= payload.length; p += 6) if (payload.readUInt16BE(p) === id) return payload.readUInt32BE(p + 2);
  return undefined;
}

function note(msg: string): void {
  if (process.env.MYCEL_TEST_VERBOSE) console.log(msg);
}
