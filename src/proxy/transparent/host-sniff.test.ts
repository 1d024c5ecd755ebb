import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { detectProtocol } from '../outbound/detect.js';
import { hostOfHead, sniffHost } from './host-sniff.js';

test('the Host of an HTTP/1 request head, without its port', () => {
  assert.equal(hostOfHead('GET / HTTP/1.1\r\nHost: API:8080\r\nAccept: */*\r\n\r\n'), 'api');
  assert.equal(hostOfHead('POST /x HTTP/1.0\r\nuser-agent: t\r\nhost:reviews\r\n\r\n'), 'reviews');
  assert.equal(hostOfHead('GET / HTTP/1.1\r\nHost: [fd00::1]:80\r\n\r\n'), 'fd00::1');
  assert.equal(hostOfHead('GET / HTTP/1.1\r\nAccept: */*\r\n\r\n'), null, 'no Host');
  assert.equal(hostOfHead('GET / HTTP/1.1\r\nAccept: */*\r\n\r\nHost: body\r\n'), null, 'a Host past the head is body');
  assert.equal(hostOfHead('\x16\x03\x01\x02\x00'), null, 'TLS');
  assert.equal(hostOfHead('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), null, 'HTTP/2');
});

async function pair(): Promise<{ client: net.Socket; server: net.Socket; close(): void }> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const client = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  const server = await accepted;
  return { client, server, close: () => { client.destroy(); server.destroy(); srv.close(); } };
}

test('sniffing waits for the whole head across chunks and puts every byte back', async () => {
  const { client, server, close } = await pair();
  const host = new Promise<string | null>((r) => sniffHost(server, 5000, r));
  client.write('GET /a HTTP/1.1\r\nUser-Agent: x\r\n');
  await new Promise((r) => setTimeout(r, 20));
  client.write('Host: api:8080\r\n\r\n');
  assert.equal(await host, 'api');
  const rest = new Promise<string>((r) => server.once('data', (d: Buffer) => r(d.toString())));
  server.resume();
  assert.equal(await rest, 'GET /a HTTP/1.1\r\nUser-Agent: x\r\nHost: api:8080\r\n\r\n');
  close();
});

test('a client that sends something other than HTTP is answered at its first line', async () => {
  const { client, server, close } = await pair();
  const host = new Promise<string | null>((r) => sniffHost(server, 5000, r));
  client.write('HELLO THERE\r\n');
  assert.equal(await host, null);
  close();
});

test('after sniffing, protocol detection reads the same bytes at once (the socket flows again)', { timeout: 30_000 }, async () => {
  const { client, server, close } = await pair();
  client.write('GET / HTTP/1.1\r\nHost: api\r\n\r\n');
  assert.equal(await new Promise<string | null>((r) => sniffHost(server, 5000, r)), 'api');
  // With an hour-long detection timeout, only the bytes themselves can answer.
  assert.equal(await new Promise((r) => detectProtocol(server, 3_600_000, 'tcp', r)), 'h1');
  close();
});
