// Fault injection (Mycel's Fault kind via ExtensionRef): the abort error, in the status the Fault asks for, mapped
// between HTTP and gRPC when the request speaks the other one (gRPC's documented HTTP-to-gRPC mapping).

import { MycelError } from '../../../core/errors.js';

const GRPC_FROM_HTTP: Record<number, number> = { 400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14 };
const HTTP_FROM_GRPC: Record<number, number> = { 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401 };

/** gRPC status for an HTTP status (UNKNOWN when gRPC defines none). */
export function grpcStatusOf(http: number): number {
  return GRPC_FROM_HTTP[http] ?? 2;
}

export function httpStatusOf(grpc: number): number {
  return HTTP_FROM_GRPC[grpc] ?? 500;
}

/**
 * The error an abort answers with: the Fault's own status, and its counterpart in the other protocol (the error
 * responder uses the gRPC one for gRPC requests, as a trailers-only response).
 */
export function faultAbort(fault: string, http: number | null, grpc: number | null): MycelError {
  const status = http ?? httpStatusOf(grpc as number);
  const grpcStatus = grpc ?? grpcStatusOf(http as number);
  return new MycelError('fault-injected', `aborted by Fault ${fault}`, { status, grpcStatus });
}
