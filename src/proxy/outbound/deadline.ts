// Outbound deadlines: the TrafficPolicy timeout bounds the whole request (retries included) when the route sets no
// request timeout, a gRPC request's own grpc-timeout is honoured, and the earliest of them travels upstream as the
// grpc-timeout that is left (the retry layer rewrites it for each attempt). Timers end with the exchange.

import { performance } from 'node:perf_hooks';
import { MycelError } from '../../core/errors.js';
import type { HttpExchange } from '../stack/exchange.js';
import type { HeaderList } from '../stack/http-types.js';
import type { HttpLayer, HttpService } from '../stack/service.js';

const GRPC_TIMEOUT = 'grpc-timeout';

/** ms per grpc-timeout unit (gRPC over HTTP/2: Hours, Minutes, Seconds, milliseconds, microseconds, nanoseconds). */
const UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** A grpc-timeout value ("1*8DIGIT unit") in ms, or -1 when it is malformed (then it is ignored, as gRPC servers do). */
export function parseGrpcTimeout(value: string): number {
  const n = value.length - 1;
  if (n < 1 || n > 8) return -1;
  const unit = UNIT_MS[value[n] as string];
  if (unit === undefined) return -1;
  let digits = 0;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    digits = digits * 10 + c;
  }
  return digits * unit;
}

/** The grpc-timeout for `ms` left, rounded down (never promise more time than there is), at least 1 microsecond. */
export function formatGrpcTimeout(ms: number): string {
  if (ms < 1) return `${Math.max(1, Math.floor(ms * 1000))}u`;
  if (ms < 1e8) return `${Math.floor(ms)}m`;
  const s = Math.floor(ms / 1000);
  if (s < 1e8) return `${s}S`;
  return `${Math.min(99_999_999, Math.floor(s / 3600))}H`;
}

/** Sets grpc-timeout in the list (in place when present). */
export function setGrpcTimeout(headers: HeaderList, value: string): void {
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] === GRPC_TIMEOUT) {
      headers[i + 1] = value;
      return;
    }
  }
  headers.push(GRPC_TIMEOUT, value);
}

function policyTimedOut(ex: HttpExchange, ms: number): void {
  ex.fail(new MycelError('response-timeout', `no complete response within the TrafficPolicy timeout of ${ex.destination ?? '?'} (${ms} ms)`));
}

function grpcDeadlinePassed(ex: HttpExchange, value: string): void {
  ex.fail(new MycelError('response-timeout', `the gRPC deadline of the request passed (grpc-timeout ${value})`));
}

class Deadline implements HttpService {
  constructor(private readonly inner: HttpService) {}

  call(ex: HttpExchange): void {
    const routeMs = ex.routeState?.rule.requestTimeoutMs ?? 0;
    const policyMs = routeMs > 0 ? 0 : (ex.service?.policy?.timeoutMs ?? 0);
    let grpcValue: string | null = null;
    if (ex.grpc) {
      const h = ex.headers;
      for (let i = 0; i < h.length; i += 2) if (h[i] === GRPC_TIMEOUT) grpcValue = h[i + 1] as string;
    }
    const grpcMs = grpcValue === null ? -1 : parseGrpcTimeout(grpcValue);
    if (routeMs <= 0 && policyMs <= 0 && grpcMs < 0) {
      this.inner.call(ex);
      return;
    }
    // All deadlines count from the request's arrival (the route's own timer started a moment later, at its match).
    const meshMs = routeMs > 0 ? routeMs : policyMs;
    let deadline = meshMs > 0 ? ex.startTime + meshMs : Infinity;
    const now = performance.now();
    if (policyMs > 0) {
      if (deadline <= now) return policyTimedOut(ex, policyMs);
      ex.addTimer(setTimeout(policyTimedOut, deadline - now, ex, policyMs));
    }
    if (grpcMs >= 0 && ex.startTime + grpcMs < deadline) {
      deadline = ex.startTime + grpcMs;
      if (deadline <= now) return grpcDeadlinePassed(ex, grpcValue as string);
      ex.addTimer(setTimeout(grpcDeadlinePassed, deadline - now, ex, grpcValue as string));
    }
    ex.deadline = deadline;
    if (ex.grpc) setGrpcTimeout(ex.headers, formatGrpcTimeout(deadline - now));
    this.inner.call(ex);
  }
}

export const deadlineLayer = (): HttpLayer => (inner) => new Deadline(inner);
