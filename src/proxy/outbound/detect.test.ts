import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { classify, detectProtocol, type DetectedProtocol } from './detect.js';

test('classify: HTTP/2 preface, HTTP/1 request lines, prefixes and anything else', () => {
  const preface = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
  assert.equal(classify(Buffer.from(preface)), 'h2');
  assert.equal(classify(Buffer.from(preface + 'extra')), 'h2');
  assert.equal(classify(Buffer.from('PRI * HT')), 'more');
  assert.equal(classify(Buffer.from('GET / HTTP/1.1\r\n')), 'h1');
  assert.equal(classify(Buffer.from('OPTIONS * HTTP/1.1\r\n')), 'h1');
  assert.equal(classify(Buffer.from('GE')), 'more');
  assert.equal(classify(Buffer.from('\x16\x03\x01\x02\x00')), 'tcp', 'a TLS ClientHello is not HTTP');
  assert.equal(classify(Buffer.from('*1\r\n$4\r\nPING\r\n')), 'tcp', 'RESP is not HTTP');
  assert.equal(classify(Buffer.from([0, 0, 0, 8, 4, 210, 22, 47])), 'tcp', 'a postgres startup packet is not HTTP');
});

async function detectOver(send: Buffer | null, timeoutMs: number, fallback: DetectedProtocol): Promise<{ p: DetectedProtocol; firstBytes: string }> {
  return new Promise((resolve) => {
    const server = net.createServer((s) => {
      detectProtocol(s, timeoutMs, fallback, (p) => {
        // The bytes read for detection were put back: the next reader sees the stream from its start.
        s.once('readable', () => {
          const b = s.read() as Buffer | null;
          resolve({ p, firstBytes: b ? b.toString() : '' });
          s.destroy();
          server.close();
        });
        if (send === null) {
          resolve({ p, firstBytes: '' });
          s.destroy();
          server.close();
        }
      });
    });
    server.listen(0, '127.0.0.1', () => {
      const c = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1', () => {
        if (send !== null) c.write(send);
      });
      c.on('error', () => {});
    });
  });
}

test('detection puts the bytes back for the protocol handler', async () => {
  const r = await detectOver(Buffer.from('GET /x HTTP/1.1\r\nHost: a\r\n\r\n'), 1000, 'tcp');
  assert.equal(r.p, 'h1');
  assert.equal(r.firstBytes, 'GET /x HTTP/1.1\r\nHost: a\r\n\r\n');
});

test('a silent client (server-speaks-first protocol) falls back after the timeout', async () => {
  const r = await detectOver(null, 50, 'tcp');
  assert.equal(r.p, 'tcp');
});
