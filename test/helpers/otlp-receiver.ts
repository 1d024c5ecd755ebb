// Test harness: an OTLP/HTTP trace receiver on 127.0.0.1 port 0 (the control plane's decoder, itself checked against
// the official OpenTelemetry exporters in otlp-receiver.test.ts) that keeps what it got in a trace buffer.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { receiveOtlpTraces } from '../../src/control-plane/traces/otlp-receiver.js';
import { TraceBuffer } from '../../src/control-plane/traces/trace-buffer.js';

export interface TestCollector {
  url: string;
  traces: TraceBuffer;
  /** Export requests received (by content-type). */
  requests: string[];
  close(): Promise<void>;
}

export async function startCollector(): Promise<TestCollector> {
  const traces = new TraceBuffer();
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push(req.headers['content-type'] ?? '');
      void receiveOtlpTraces(req.headers['content-type'], req.headers['content-encoding'], Buffer.concat(chunks), traces).then((a) => {
        res.writeHead(a.status, { 'content-type': a.type });
        res.end(a.body);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    traces,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
