// The one place where a mesh error becomes a response: HTTP status or gRPC status, the `x-mycel-error` field naming
// the reason, a short text body, and one structured log line. After the response has started it can only reset.

import type { Logger } from '../../core/log.js';
import type { MycelError } from '../../core/errors.js';
import type { HttpExchange } from './exchange.js';

export const ERROR_HEADER = 'x-mycel-error';

export function createErrorResponder(log: Logger, proxyName: string) {
  return function respondError(ex: HttpExchange, err: MycelError): void {
    const ds = ex.downstream;
    log.warn('request failed', {
      direction: ex.direction,
      error: err.code,
      reason: err.message,
      method: ex.method,
      authority: ex.authority,
      path: ex.path.length > 256 ? ex.path.slice(0, 256) + '...' : ex.path,
      destination: ex.destination,
      endpoint: ex.endpoint,
      responseStarted: ds.headersSent,
    });
    if (ds.headersSent) {
      ds.abort();
      return;
    }
    if (ex.grpc) {
      // gRPC: a trailers-only response (HTTP 200) whose grpc-status carries the failure.
      ex.status = 200;
      ex.grpcStatus = String(err.grpcStatus);
      const head = [
        'content-type', 'application/grpc',
        'grpc-status', ex.grpcStatus,
        'grpc-message', grpcMessage(`mycel ${proxyName}: ${err.message}`),
        ERROR_HEADER, errorFieldValue(err),
      ];
      if (err.headers !== null) head.push(...err.headers);
      ds.writeHead(200, head, ex);
      ds.end(null);
      return;
    }
    const body = Buffer.from(`mycel ${proxyName}: ${err.message}\n`);
    ex.status = err.status;
    const head = [
      'content-type', 'text/plain; charset=utf-8',
      'content-length', String(body.length),
      ERROR_HEADER, errorFieldValue(err),
    ];
    if (err.headers !== null) head.push(...err.headers);
    ds.writeHead(err.status, head, ex);
    if (ex.method !== 'HEAD') ds.write(body);
    ds.end(null);
  };
}

/** The x-mycel-error value: the catalogue code, then what it applies to when the error names something. */
export function errorFieldValue(err: MycelError): string {
  return err.subject === null ? err.code : `${err.code} ${err.subject}`;
}

/** Percent-encodes a grpc-message as the gRPC spec asks: only bytes outside 0x20..0x7E, and "%" itself. */
export function grpcMessage(text: string): string {
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}
