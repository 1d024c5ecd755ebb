// Distributed tracing end to end: a control plane, two sidecars joined to it (web -> api -> app) and an OTLP
// collector. Spans go to the control plane by default and to the MeshConfig's collector; W3C and B3 contexts are
// continued, the app sees this hop's server span as its parent, sampling 0 makes no spans, a dead collector is
// counted, and `mycel trace` shows the result.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ReceivedSpan } from '../../src/control-plane/traces/otlp-decode.js';
import { writeDevCertificates } from '../../src/security/dev-ca.js';
import { startHttpApp, type SeenRequest, type TestApp } from '../helpers/apps.js';
import { API_AND_WEB_SERVICES, eventually, startControl, type ControlProcess } from '../helpers/control.js';
import { closedPort, request } from '../helpers/http.js';
import { startCollector, type TestCollector } from '../helpers/otlp-receiver.js';
import { startSidecar, startTwoSidecars, type SidecarProcess, type TwoSidecars } from '../helpers/sidecars.js';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

const meshConfig = (sampling: number, collector: string) => `apiVersion: mycel.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh }
spec:
  trustDomain: mycel.local
  telemetry: { tracing: { sampling: ${sampling} }, otlp: { endpoint: "${collector}" } }
`;

describe('tracing through two sidecars joined to a control plane', () => {
  let dir: string;
  let cp: ControlProcess;
  let collector: TestCollector;
  let app: TestApp;
  let api: SidecarProcess;
  let web: SidecarProcess;

  /** Applies a MeshConfig and waits until both sidecars run it. */
  async function applyMesh(sampling: number, collectorUrl: string): Promise<void> {
    const file = join(dir, `mesh-${sampling}.yaml`);
    await writeFile(file, meshConfig(sampling, collectorUrl));
    const applied = await cp.cli(['apply', '-f', file]);
    assert.equal(applied.code, 0, applied.stderr);
    for (const s of [web, api]) {
      await eventually(`${s.service} runs the new MeshConfig`, async () => {
        const cfg = (await (await fetch(`http://${s.admin}/config`)).json()) as { resources: Array<{ kind: string; spec: { telemetry: { tracing: { sampling: number }; otlp?: { endpoint: string } } } }> };
        const mesh = cfg.resources.find((r) => r.kind === 'MeshConfig');
        return mesh?.spec.telemetry.tracing.sampling === sampling && mesh.spec.telemetry.otlp?.endpoint === collectorUrl ? true : undefined;
      });
    }
  }

  async function send(path: string, headers: Record<string, string> = {}): Promise<SeenRequest> {
    const r = await request(web.upstreams.api as string, { path, headers });
    assert.equal(r.status, 200, r.body.toString());
    const seen = app.seen.find((s) => s.url === path);
    assert.ok(seen, `the app got ${path}`);
    return seen;
  }

  async function traceFromControl(traceId: string, spans = 2): Promise<ReceivedSpan[]> {
    return eventually(`${spans} spans of trace ${traceId} in the control plane`, async () => {
      const r = await cp.api<{ spans: ReceivedSpan[] }>('GET', `/api/v1/traces/${traceId}`);
      return r.status === 200 && r.body.spans.length >= spans ? r.body.spans : undefined;
    });
  }

  /** The hop pair of a trace: web's client span and api's server span under it. */
  function hops(spans: ReceivedSpan[]): { client: ReceivedSpan; server: ReceivedSpan } {
    const client = spans.find((s) => s.service === 'web' && s.kind === 'client');
    const server = spans.find((s) => s.service === 'api' && s.kind === 'server');
    assert.ok(client && server, JSON.stringify(spans));
    assert.equal(server.parentSpanId, client.spanId, 'the server span is a child of the client span');
    return { client, server };
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mycel-tracing-'));
    await writeDevCertificates(dir, { services: ['web', 'api'] });
    collector = await startCollector();
    cp = await startControl({ stateDir: join(dir, 'cp') });
    await writeFile(join(dir, 'base.yaml'), meshConfig(100, collector.url) + '---\n' + API_AND_WEB_SERVICES);
    const applied = await cp.cli(['apply', '-f', join(dir, 'base.yaml')]);
    assert.equal(applied.code, 0, applied.stderr);
    app = await startHttpApp();
    api = await startSidecar({ dir, service: 'api', appPort: app.port, configFiles: [], control: { url: cp.url, tokenFile: await cp.joinTokenFile('api') } });
    web = await startSidecar({ dir, service: 'web', appPort: 9, configFiles: [], upstreams: ['api=127.0.0.1:0'], control: { url: cp.url, tokenFile: await cp.joinTokenFile('web') } });
    await eventually('a first reply through web -> api', async () => ((await request(web.upstreams.api as string, { path: '/warmup' })).status === 200 ? true : undefined));
  });

  after(async () => {
    await Promise.all([web?.stop(), api?.stop()]);
    await cp?.stop();
    await collector?.close();
    await app?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  let firstTrace = '';

  test('a request with no trace headers starts a trace: client and server spans linked, the app a child of the server span', async () => {
    const seen = await send('/t/fresh');
    const m = TRACEPARENT.exec(String(seen.headers.traceparent));
    assert.ok(m, `the app got a traceparent: ${String(seen.headers.traceparent)}`);
    const [, traceId, parent, flags] = m;
    assert.equal(flags, '01');
    const { client, server } = hops(await traceFromControl(traceId!));
    assert.equal(client.parentSpanId, null, 'the client span is the root');
    assert.equal(parent, server.spanId, "the app's parent is the server span");
    assert.equal(client.name, 'GET /t/fresh');
    assert.equal(client.attributes['mycel.direction'], 'outbound');
    assert.equal(client.attributes['mycel.source.service'], 'web');
    assert.equal(client.attributes['mycel.destination.service'], 'api');
    assert.equal(client.attributes['mycel.destination.identity'], 'spiffe://mycel.local/ns/default/svc/api');
    assert.match(String(client.attributes['mycel.upstream.endpoint']), /^127\.0\.0\.1:\d+$/);
    assert.equal(client.attributes['http.response.status_code'], 200);
    assert.equal(server.attributes['mycel.direction'], 'inbound');
    assert.equal(server.attributes['mycel.source.identity'], 'spiffe://mycel.local/ns/default/svc/web');
    // Start times come from two processes' wall clocks (each its own timeOrigin + performance.now()), which can
    // differ by a fraction of a millisecond: the nesting is checked up to that offset; durations are each one clock.
    const CROSS_PROCESS_CLOCK_MS = 1;
    assert.ok(server.startTime >= client.startTime - CROSS_PROCESS_CLOCK_MS, `server span starts ${client.startTime - server.startTime} ms before the client span`);
    assert.ok(server.durationMs <= client.durationMs);
    // The same spans reach the MeshConfig's collector.
    await eventually('the trace at the OTLP collector', async () => (collector.traces.get(traceId!)?.length === 2 ? true : undefined));
    firstTrace = traceId!;
  });

  test('an incoming W3C context is continued: same trace id, tracestate kept, parent chain intact', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const seen = await send('/t/w3c', { traceparent: `00-${traceId}-00f067aa0ba902b7-01`, tracestate: 'vendor=abc,other=1' });
    const m = TRACEPARENT.exec(String(seen.headers.traceparent));
    assert.equal(m?.[1], traceId);
    assert.equal(seen.headers.tracestate, 'vendor=abc,other=1');
    const { client, server } = hops(await traceFromControl(traceId));
    assert.equal(client.parentSpanId, '00f067aa0ba902b7');
    assert.equal(m?.[2], server.spanId);
  });

  test('an incoming unsampled W3C context propagates unsampled', async () => {
    const seen = await send('/t/unsampled', { traceparent: '00-11111111111111111111111111111111-00f067aa0ba902b7-00' });
    const m = TRACEPARENT.exec(String(seen.headers.traceparent));
    assert.equal(m?.[1], '11111111111111111111111111111111');
    assert.equal(m?.[3], '00');
  });

  test('B3 single header: continued, and rewritten consistently with traceparent (64-bit trace id kept short)', async () => {
    const seen = await send('/t/b3', { b3: 'a3ce929d0e0e4736-00f067aa0ba902b7-1' });
    const traceId = '0000000000000000a3ce929d0e0e4736';
    const m = TRACEPARENT.exec(String(seen.headers.traceparent));
    assert.equal(m?.[1], traceId);
    assert.equal(seen.headers.b3, `a3ce929d0e0e4736-${m?.[2]}-1`);
    const { client, server } = hops(await traceFromControl(traceId));
    assert.equal(client.parentSpanId, '00f067aa0ba902b7');
    assert.equal(m?.[2], server.spanId);
  });

  test('B3 multi headers: continued, and rewritten consistently with traceparent', async () => {
    const traceId = '80f198ee56343ba864fe8b2a57d3eff7';
    const seen = await send('/t/b3multi', { 'x-b3-traceid': traceId, 'x-b3-spanid': 'e457b5a2e4d86bd1', 'x-b3-parentspanid': '05e3ac9a4f6e3b90', 'x-b3-sampled': '1' });
    const m = TRACEPARENT.exec(String(seen.headers.traceparent));
    assert.equal(m?.[1], traceId);
    assert.equal(seen.headers['x-b3-traceid'], traceId);
    assert.equal(seen.headers['x-b3-spanid'], m?.[2]);
    assert.equal(seen.headers['x-b3-sampled'], '1');
    assert.equal(seen.headers['x-b3-parentspanid'], undefined);
    const { client, server } = hops(await traceFromControl(traceId));
    assert.equal(client.parentSpanId, 'e457b5a2e4d86bd1');
    assert.equal(m?.[2], server.spanId);
  });

  const failedTrace = '33333333333333333333333333333333';

  test('a request the mesh fails is an error span with the x-mycel-error reason', async () => {
    const r = await request(web.outbound, { path: '/nowhere', headers: { host: 'nosuch', traceparent: `00-${failedTrace}-00f067aa0ba902b7-01` } });
    assert.equal(r.status, 502);
    const [span] = await traceFromControl(failedTrace, 1);
    assert.equal(span!.status, 'error');
    assert.equal(span!.kind, 'client');
    assert.equal(span!.attributes['mycel.error'], 'unknown-service');
    assert.equal(span!.attributes['http.response.status_code'], 502);
  });

  test('sampling 0: a request with no context makes no spans (but still propagates an unsampled context)', async () => {
    await applyMesh(0, collector.url);
    const seen = await send('/t/sampling-zero');
    const m = TRACEPARENT.exec(String(seen.headers.traceparent));
    assert.equal(m?.[3], '00');
    // A sampled request sent afterwards goes through the same export queues; once its spans are in, earlier ones would be.
    const marker = '22222222222222222222222222222222';
    await send('/t/marker', { traceparent: `00-${marker}-00f067aa0ba902b7-01` });
    hops(await traceFromControl(marker));
    for (const id of [m![1]!, '11111111111111111111111111111111']) {
      assert.equal((await cp.api('GET', `/api/v1/traces/${id}`)).status, 404, `no spans for unsampled trace ${id}`);
    }
  });

  test('a dead collector: its spans are dropped and counted, the control plane still gets them', async () => {
    await applyMesh(100, `http://127.0.0.1:${await closedPort()}`);
    const seen = await send('/t/dead-collector');
    const traceId = TRACEPARENT.exec(String(seen.headers.traceparent))![1]!;
    hops(await traceFromControl(traceId));
    const dropped = await eventually('a dropped-span count on web', async () => {
      const text = await (await fetch(`http://${web.admin}/metrics`)).text();
      const m = /^mycel_trace_spans_dropped_total\{exporter="otlp",reason="export-failed"\} (\d+)$/m.exec(text);
      return m && Number(m[1]) > 0 ? text : undefined;
    });
    assert.match(dropped, /^mycel_trace_spans_exported_total\{exporter="control-plane"\} [1-9]\d*$/m);
  });

  test('mycel trace lists recent traces and draws one as a waterfall', async () => {
    const list = await cp.cli(['trace']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /^TRACE +STARTED +ROOT +SERVICES +DURATION +SPANS +ERROR$/m);
    assert.match(list.stdout, new RegExp(`^${firstTrace} +\\d+s ago +web GET /t/fresh +api,web +[\\d.]+ m?s +2 *$`, 'm'));
    const one = await cp.cli(['trace', firstTrace]);
    assert.equal(one.code, 0, one.stderr);
    const lines = one.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, new RegExp(`^trace ${firstTrace} +[\\d.]+ m?s +2 spans$`));
    assert.match(lines[1]!, /^web GET \/t\/fresh \(client\) +[\d.]+ m?s {2}\|█+ *\|$/);
    assert.match(lines[2]!, /^ {2}api GET \/t\/fresh \(server\) +[\d.]+ m?s {2}\| *█+ *\|$/);
    const failed = await cp.cli(['trace', failedTrace]);
    assert.match(failed.stdout, /^web GET \/nowhere \(client\) +[\d.]+ m?s {2}\|x+\| {2}ERROR unknown-service$/m);
    assert.match((await cp.cli(['trace', '--service', 'web', '--limit', '50'])).stdout, new RegExp(`^${failedTrace} .* ERROR$`, 'm'));
    const missing = await cp.cli(['trace', 'ab'.repeat(16)]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not in the control plane's recent traces/);
  });
});

describe('tracing to a collector that never answers (sidecars from files, no control plane)', () => {
  let app: TestApp;
  let mesh: TwoSidecars;
  const held: http.ServerResponse[] = [];
  const slow = http.createServer((_req, res) => void held.push(res));

  before(async () => {
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    app = await startHttpApp();
    const collectorUrl = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
    mesh = await startTwoSidecars({ apiAppPort: app.port, apiProtocol: 'http', meshSpec: `telemetry: { tracing: { sampling: 100 }, otlp: { endpoint: "${collectorUrl}" } }` });
  });
  after(async () => {
    await mesh?.close();
    await app?.close();
    await new Promise<void>((resolve) => {
      slow.close(() => resolve());
      slow.closeAllConnections();
    });
  });

  test('requests are unaffected; spans beyond the bounded queue are dropped and counted', async () => {
    // The exporter holds at most one batch in flight (512) plus its queue (2048): more requests than that must drop.
    const total = 2700;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    let next = 0;
    const worker = async () => {
      while (next < total) {
        const i = next++;
        const r = await request(mesh.apiBinding, { path: `/slow/${i}`, agent });
        assert.equal(r.status, 200);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    agent.destroy();
    await eventually('an export the collector never answers', async () => (held.length >= 1 ? true : undefined));
    const text = await (await fetch(`http://${mesh.web.admin}/metrics`)).text();
    const dropped = Number(/^mycel_trace_spans_dropped_total\{exporter="otlp",reason="queue-full"\} (\d+)$/m.exec(text)?.[1] ?? 0);
    assert.ok(dropped >= total - 2048 - 512, `dropped ${dropped} of ${total} spans`);
    assert.doesNotMatch(text, /^mycel_trace_spans_exported_total\{exporter="otlp"\} [1-9]/m);
  });
});
