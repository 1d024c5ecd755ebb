import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pacedLoad } from './paced-load.js';

test('paced load sends at the rate, records only the measured window, and counts answers by x-instance', async () => {
  let served = 0;
  const server = http.createServer((req, res) => {
    served++;
    req.resume();
    res.writeHead(200, { 'x-instance': served % 2 === 0 ? 'even' : 'odd' });
    res.end('ok');
  });
  const port = await new Promise<number>((r) => server.listen(0, '127.0.0.1', () => r((server.address() as AddressInfo).port)));
  try {
    const r = await pacedLoad(port, { authority: 'api', path: '/', rate: 200, warmupS: 0.2, seconds: 0.5 });
    assert.equal(served, 140, 'every request due in 0.7 s at 200/s was sent and answered');
    assert.ok(r.ok >= 90 && r.ok <= 101, `measured ${r.ok} of about 100`);
    assert.equal(r.errors, 0);
    assert.equal((r.byInstance.even ?? 0) + (r.byInstance.odd ?? 0), r.ok);
    assert.ok(r.p50Ms !== null && r.p99Ms !== null && r.p50Ms <= r.p99Ms);
  } finally {
    server.close();
  }
});
