// One active health probe over a socket that is already connected (plain, or mTLS from the caller's connector):
// an HTTP/1.1 GET with expected statuses, a gRPC grpc.health.v1.Health/Check over HTTP/2, or a bare TCP connect.
// Every probe settles once the socket is destroyed, which is how the checker enforces its timeout.

import http from 'node:http';
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { decodeHealthCheckResponse, encodeHealthCheckRequest, HEALTH_CHECK_PATH, SERVING, SERVING_STATUS_NAMES } from './grpc-health-codec.js';

export interface ProbeResult {
  ok: boolean;
  /** Why, for logs and `mycel get endpoints`: the status seen, or the error. */
  detail: string;
}

/** A status range [low, high], both inclusive. */
export type StatusRange = readonly [number, number];

export function statusExpected(status: number, expected: readonly StatusRange[]): boolean {
  for (const [low, high] of expected) if (status >= low && status <= high) return true;
  return false;
}

export function httpProbe(socket: Socket, authority: string, path: string, expected: readonly StatusRange[]): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const req = http.request({
      createConnection: () => socket,
      method: 'GET',
      path,
      headers: { host: authority, 'user-agent': 'mycel-health-check', connection: 'close' },
    });
    req.on('response', (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      resolve({ ok: statusExpected(status, expected), detail: `HTTP ${status}` });
    });
    req.on('error', (err) => resolve({ ok: false, detail: err.message }));
    req.on('close', () => resolve({ ok: false, detail: 'connection closed before a response' }));
    req.end();
  });
}

export function grpcProbe(socket: Socket, authority: string, service: string): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const scheme = (socket as TLSSocket).encrypted === true ? 'https' : 'http';
    const session = http2.connect(`${scheme}://${authority}`, { createConnection: () => socket });
    const done = (result: ProbeResult) => {
      resolve(result);
      session.destroy();
    };
    session.on('error', (err) => done({ ok: false, detail: err.message }));
    session.on('close', () => done({ ok: false, detail: 'connection closed before a response' }));
    const stream = session.request({ ':method': 'POST', ':path': HEALTH_CHECK_PATH, 'content-type': 'application/grpc', te: 'trailers' });
    const chunks: Buffer[] = [];
    let httpStatus = 0;
    let grpcStatus: string | undefined;
    stream.on('response', (headers) => {
      httpStatus = Number(headers[':status']);
      grpcStatus = first(headers['grpc-status']); // present here in a trailers-only (error) answer
    });
    stream.on('trailers', (trailers) => {
      grpcStatus = first(trailers['grpc-status']) ?? grpcStatus;
    });
    stream.on('data', (d: Buffer) => chunks.push(d));
    stream.on('error', (err) => done({ ok: false, detail: err.message }));
    stream.on('close', () => {
      if (httpStatus !== 200) return done({ ok: false, detail: httpStatus === 0 ? `stream reset (code ${stream.rstCode})` : `HTTP ${httpStatus}` });
      if (grpcStatus !== '0') return done({ ok: false, detail: `grpc-status ${grpcStatus ?? 'missing'}` });
      const status = decodeHealthCheckResponse(Buffer.concat(chunks));
      if (typeof status === 'string') return done({ ok: false, detail: status });
      done({ ok: status === SERVING, detail: SERVING_STATUS_NAMES[status] ?? `status ${status}` });
    });
    stream.end(encodeHealthCheckRequest(service));
  });
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
