import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResponseParser, parseResponseHead, H1ParseError, type ResponseHead } from './response-parser.js';

function collect(method = 'GET') {
  const out = { info: [] as number[], head: null as ResponseHead | null, body: [] as Buffer[], trailers: undefined as string[] | null | undefined, ended: 0 };
  const parser = new ResponseParser({
    onInformational: (s) => out.info.push(s),
    onHead: (h) => { out.head = h; },
    onBody: (c) => out.body.push(Buffer.from(c)),
    onEnd: (t) => { out.trailers = t; out.ended++; },
  }, 1024);
  parser.reset(method);
  return { parser, out, text: () => Buffer.concat(out.body).toString() };
}

/** Feeds the bytes in every possible two-piece split, so that no boundary case is missed. */
function feedSplits(raw: string, method: string, check: (r: ReturnType<typeof collect>) => void): void {
  const bytes = Buffer.from(raw, 'latin1');
  for (let cut = 0; cut <= bytes.length; cut++) {
    const r = collect(method);
    r.parser.execute(bytes.subarray(0, cut));
    r.parser.execute(bytes.subarray(cut));
    check(r);
  }
}

test('content-length body, keep-alive, every split point', () => {
  feedSplits('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello', 'GET', (r) => {
    assert.equal(r.out.head?.status, 200);
    assert.deepEqual(r.out.head?.headers, ['content-length', '5', 'x-a', 'b']);
    assert.equal(r.out.head?.keepAlive, true);
    assert.equal(r.text(), 'hello');
    assert.equal(r.out.ended, 1);
    assert.ok(r.parser.done);
  });
});

test('chunked body with extensions and trailers, every split point', () => {
  const raw = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nGrpc-Status: 0\r\nX-T: 1\r\n\r\n';
  feedSplits(raw, 'GET', (r) => {
    assert.equal(r.text(), 'hello world');
    assert.deepEqual(r.out.trailers, ['grpc-status', '0', 'x-t', '1']);
    assert.equal(r.out.ended, 1);
  });
});

test('chunked body without trailers ends with null trailers', () => {
  feedSplits('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n', 'GET', (r) => {
    assert.equal(r.text(), 'abc');
    assert.equal(r.out.trailers, null);
  });
});

test('informational responses come before the final one', () => {
  feedSplits('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n', 'POST', (r) => {
    assert.deepEqual(r.out.info, [100, 103]);
    assert.equal(r.out.head?.status, 204);
    assert.equal(r.out.ended, 1);
  });
});

test('no body for HEAD, 204 and 304 even with Content-Length', () => {
  for (const [method, status] of [['HEAD', 200], ['GET', 204], ['GET', 304]] as const) {
    const r = collect(method);
    r.parser.execute(Buffer.from(`HTTP/1.1 ${status} X\r\nContent-Length: 10\r\n\r\n`));
    assert.equal(r.out.ended, 1, `${method} ${status}`);
    assert.equal(r.text(), '');
  }
});

test('close-delimited body ends at finish() and is not keep-alive', () => {
  const r = collect();
  r.parser.execute(Buffer.from('HTTP/1.1 200 OK\r\n\r\nsome'));
  r.parser.execute(Buffer.from(' bytes'));
  assert.equal(r.out.head?.keepAlive, false);
  assert.ok(r.parser.readsUntilClose);
  r.parser.finish();
  assert.equal(r.text(), 'some bytes');
  assert.equal(r.out.ended, 1);
});

test('HTTP/1.0 and Connection: close are not reusable; keep-alive in 1.0 is', () => {
  assert.equal(parseResponseHead('HTTP/1.0 200 OK\r\nContent-Length: 1', 'GET').keepAlive, false);
  assert.equal(parseResponseHead('HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive', 'GET').keepAlive, true);
  assert.equal(parseResponseHead('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: Keep-Alive, close', 'GET').keepAlive, false);
});

test('bytes after a complete response are reported as not consumed', () => {
  const r = collect();
  const consumed = r.parser.execute(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA'));
  assert.equal(consumed, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'.length);
});

test('truncated responses are errors at finish()', () => {
  for (const raw of ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab', 'HTTP/1.1 200 O']) {
    const r = collect();
    r.parser.execute(Buffer.from(raw));
    assert.throws(() => r.parser.finish(), H1ParseError, raw);
  }
});

test('malformed and ambiguous responses are rejected', () => {
  const bad: Record<string, string> = {
    'both TE and CL': 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n',
    'conflicting CL': 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n',
    'CL list conflict': 'HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n',
    'signed CL': 'HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n',
    'obs-fold': 'HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n',
    'bare LF in head': 'HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n',
    'bare CR in value': 'HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n',
    'NUL in value': 'HTTP/1.1 200 OK\r\nX-A: a\0b\r\n\r\n',
    'space before colon': 'HTTP/1.1 200 OK\r\nX-A : b\r\n\r\n',
    'bad status line': 'HTTP/1.1 2000 OK\r\n\r\n',
    'HTTP/2 status line': 'HTTP/2 200\r\n\r\n',
    'TE in 1.0': 'HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n',
    'chunked not last twice': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n',
    'bad chunk size': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
    'chunk size overflow': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n',
    'bare LF after chunk size': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\na\r\n',
    'missing CRLF after data': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXX',
    'unexpected 101': 'HTTP/1.1 101 Switching Protocols\r\n\r\n',
    'head too large': 'HTTP/1.1 200 OK\r\nX: ' + 'a'.repeat(2000) + '\r\n\r\n',
  };
  for (const [name, raw] of Object.entries(bad)) {
    const r = collect();
    assert.throws(() => r.parser.execute(Buffer.from(raw, 'latin1')), H1ParseError, name);
  }
});

test('a head larger than the limit is refused even when it arrives in small pieces', () => {
  const r = collect();
  assert.throws(() => {
    r.parser.execute(Buffer.from('HTTP/1.1 200 OK\r\n'));
    for (let i = 0; i < 200; i++) r.parser.execute(Buffer.from('X-Pad: 0123456789\r\n'));
  }, H1ParseError);
});
