import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { listenCompanion, listenInboundDualStack, loopbackCompanion } from './dual-stack.js';

test('the outbound companion is the other family\'s loopback, never an address other hosts reach', () => {
  assert.equal(loopbackCompanion('127.0.0.1'), '::1');
  assert.equal(loopbackCompanion('::1'), '127.0.0.1');
  assert.equal(loopbackCompanion('::'), null, 'the dual-stack wildcard takes both families already');
  assert.equal(loopbackCompanion('fd00::1'), null);
});

/** Connects and reports the address the server saw the connection arrive on. */
function arrivedOn(host: string, port: number, server: net.Server): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('connection', (s) => {
      resolve(s.localAddress ?? '');
      s.destroy();
    });
    net.connect(port, host).on('error', reject).resume();
  });
}

test('a transparent inbound listener asked for 0.0.0.0 takes IPv4 and IPv6 connections', async (t) => {
  const server = net.createServer();
  t.after(() => server.close());
  const addr = await listenInboundDualStack(server, { host: '0.0.0.0', port: 0 });
  assert.equal(addr.host, '::');
  assert.equal(await arrivedOn('127.0.0.1', addr.port, server), '::ffff:127.0.0.1');
  assert.equal(await arrivedOn('::1', addr.port, server), '::1');
});

test('the outbound companion listens on ::1 next to 127.0.0.1', async (t) => {
  const main = net.createServer();
  const companion = net.createServer();
  t.after(() => {
    main.close();
    companion.close();
  });
  const port = await new Promise<number>((resolve) => main.listen(0, '127.0.0.1', () => resolve((main.address() as net.AddressInfo).port)));
  const addr = await listenCompanion(companion, { host: loopbackCompanion('127.0.0.1')!, port });
  assert.deepEqual(addr, { host: '::1', port });
  assert.equal(await arrivedOn('::1', port, companion), '::1');
});
