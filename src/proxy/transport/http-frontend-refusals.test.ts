// The two error reasons the end-to-end catalogue test (test/e2e/error-reasons.test.ts) cannot provoke, in process over
// real sockets: a request refused by a draining listener, and an internal error (a bug) of a layer. Each must answer
// with x-mycel-error and reach metrics, access log and tap through the diagnostics channel like any other failure.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { Server } from 'node:net';
import { parseResources } from '../../api/v1alpha1/load.js';
import { httpExchangeChannel } from '../../core/diagnostics.js';
import { toMycelError } from '../../core/errors.js';
import { silentLogger } from '../../core/log.js';
import { AccessLog } from '../../telemetry/access-log.js';
import { ProxyMetrics } from '../../telemetry/proxy-metrics.js';
import { TapHub, type TapEvent } from '../../telemetry/tap.js';
import { compilePlan } from '../config/plan.js';
import { createOutboundServer, listen } from '../outbound/accept.js';
import { createErrorResponder } from '../stack/error-response.js';
import type { HttpExchange } from '../stack/exchange.js';
import { HttpFrontend } from './http-frontend.js';

/**
 * Sends a request in two parts, `between` running after the first has reached the server; returns what came back
 * once the server closed.
 */
function exchange(port: number, first: string, rest = '', between: () => void = () => {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let got = '';
    s.setEncoding('latin1');
    s.on('data', (d: string) => (got += d));
    s.on('close', () => resolve(got));
    s.on('error', reject);
    s.setTimeout(10_000, () => s.destroy());
    s.once('connect', () => {
      s.write(first);
      if (rest === '') return;
      // The head has begun arriving: the connection is busy with a request, not idle, when the drain starts.
      setTimeout(() => {
        between();
        s.write(rest);
      }, 100);
    });
  });
}

describe('refusals and internal errors reach every telemetry sink', () => {
  let server: Server;
  let frontend: HttpFrontend;
  let port: number;
  const metrics = new ProxyMetrics();
  const lines: string[] = [];
  const accessLog = new AccessLog((l) => lines.push(l));
  const events: TapEvent[] = [];
  const hub = new TapHub('web-test', () => 'spiffe://mycel.local/ns/default/svc/web');
  let stopTap: () => void;

  before(async () => {
    const parsed = parseResources('apiVersion: mycel.dev/v1alpha1\nkind: MeshConfig\nmetadata: { name: mesh }\nspec: { trustDomain: mycel.local }\n', 'mesh.yaml');
    assert.ok(parsed.ok);
    const plan = compilePlan(parsed.resources.map((r) => r.resource), 'web', 1);
    // The layer under test has a bug: an unexpected exception, which becomes an error the one way the stack knows.
    const buggy = {
      call(ex: HttpExchange) {
        try {
          throw new TypeError('cannot read properties of undefined');
        } catch (err) {
          ex.fail(toMycelError(err));
        }
      },
    };
    frontend = new HttpFrontend('outbound', plan.mesh, { service: buggy, observer: (ex) => httpExchangeChannel.publish(ex), respondError: createErrorResponder(silentLogger, 'web') }, silentLogger);
    server = createOutboundServer(frontend, 100, 5000);
    port = (await listen(server, { host: '127.0.0.1', port: 0 })).port;
    metrics.subscribe();
    accessLog.configure(true, 'json');
    stopTap = hub.tap({}, (e) => events.push(e));
  });

  after(() => {
    stopTap();
    accessLog.close();
    metrics.unsubscribe();
    frontend.destroyAll();
    server.close();
    assert.equal(httpExchangeChannel.hasSubscribers, false, 'no subscriber is left behind');
  });

  function everywhere(code: string, status: number): void {
    const line = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.error === code);
    assert.ok(line, `an access log line for ${code}`);
    assert.equal(line.status, status);
    const ev = events.find((e) => e.error === code);
    assert.ok(ev, `a tap event for ${code}`);
    assert.equal(ev.status, status);
    assert.match(metrics.render(), new RegExp(`^mycel_mesh_errors_total\\{direction="outbound",destination_service="unknown",reason="${code}"\\} 1$`, 'm'));
  }

  test('internal: a layer\'s bug answers 500 with x-mycel-error internal', async () => {
    const text = await exchange(port, 'GET /bug HTTP/1.1\r\nhost: api\r\nconnection: close\r\n\r\n');
    assert.match(text, /^HTTP\/1\.1 500 /);
    assert.match(text, /\r\nx-mycel-error: internal\r\n/);
    everywhere('internal', 500);
  });

  test('draining: an upgrade that reaches a draining listener answers 503 draining', async () => {
    const text = await exchange(port, 'GET /ws HTTP/1.1\r\nhost: api\r\n', 'connection: upgrade\r\nupgrade: websocket\r\n\r\n', () => frontend.drain());
    assert.match(text, /^HTTP\/1\.1 503 /);
    assert.match(text, /\r\nx-mycel-error: draining\r\n/);
    everywhere('draining', 503);
  });
});
