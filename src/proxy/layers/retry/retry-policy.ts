// Decides whether a failed attempt is retried, and after how long: retryOn classes over connect failures, resets,
// HTTP statuses and gRPC statuses, an attempt limit, method idempotency, body replayability, exponential backoff
// with full jitter, and Retry-After. Built once per route; its methods allocate nothing and keep no request state.

import type { ErrorCode } from '../../../core/error-catalogue.js';
import type { HeaderList } from '../../stack/http-types.js';
import { parseRetryAfter } from './retry-after.js';

/**
 * What a retry can be for. A failure with no response: `connect-failure` (connection refused, unreachable, TLS
 * failed), `refused-stream` (HTTP/2 REFUSED_STREAM: not processed), `reset` (connection or stream reset mid-request),
 * and a per-try timeout; `5xx` and `gateway-error` also cover all four (the proxy would answer 502/503/504 for them).
 * Responses: `5xx` (500-599), `gateway-error` (502, 503, 504), `retriable-status-codes` (the listed ones), and the
 * gRPC statuses read from grpc-status in the headers (trailers-only answer) or the trailers.
 */
export type RetryOn =
  | 'connect-failure'
  | 'refused-stream'
  | 'reset'
  | '5xx'
  | 'gateway-error'
  | 'retriable-status-codes'
  | 'cancelled'
  | 'deadline-exceeded'
  | 'internal'
  | 'resource-exhausted'
  | 'unavailable';

/** How an attempt failed without a response. */
export type AttemptFailure = 'connect-failure' | 'refused-stream' | 'reset' | 'timeout';

export interface RetryOptions {
  /** Retries after the first attempt (default 2). */
  attempts?: number;
  /** Default: connect-failure, refused-stream, cancelled, unavailable. */
  retryOn?: readonly RetryOn[];
  /** For `retriable-status-codes` (default none). */
  retriableStatusCodes?: readonly number[];
  /** Retry POST, PATCH and other non-idempotent methods on responses, resets and timeouts too (default false). */
  allowNonIdempotent?: boolean;
  /** Backoff before retry n (from 0) is random in [0, min(max, base x 2^n)) (defaults 25 ms and 250 ms). */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** A Retry-After asking for a longer wait than this ends the retries: the caller gets the answer at once (default 10 s). */
  maxRetryAfterMs?: number;
  /** Request bodies up to this size are kept for a replay (default 64 KiB); see ReplayBuffer. */
  bufferLimitBytes?: number;
}

/** 'retry', or why not (constant strings, for the tap decision record). */
export type RetryVerdict = 'retry' | 'not-retriable' | 'attempts-exhausted' | 'method-not-idempotent' | 'body-not-replayable' | 'retry-after-too-long';

// Bits of the retryOn set.
const CONNECT = 1 << 0;
const REFUSED = 1 << 1;
const RESET = 1 << 2;
const ANY_5XX = 1 << 3;
const GATEWAY = 1 << 4;
const STATUS_CODES = 1 << 5;
/** The bits of the gRPC status classes (set below in BIT_OF). */
const ANY_GRPC = (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10);
const BIT_OF: Record<RetryOn, number> = {
  'connect-failure': CONNECT,
  'refused-stream': REFUSED,
  reset: RESET,
  '5xx': ANY_5XX,
  'gateway-error': GATEWAY,
  'retriable-status-codes': STATUS_CODES,
  cancelled: 1 << 6,
  'deadline-exceeded': 1 << 7,
  'resource-exhausted': 1 << 8,
  internal: 1 << 9,
  unavailable: 1 << 10,
};
/** gRPC status code -> its retryOn bit. */
const GRPC_BITS: ReadonlyMap<string, number> = new Map([
  ['1', BIT_OF.cancelled],
  ['4', BIT_OF['deadline-exceeded']],
  ['8', BIT_OF['resource-exhausted']],
  ['13', BIT_OF.internal],
  ['14', BIT_OF.unavailable],
]);

/** RFC 9110 section 9.2.2: repeating these has the effect of sending once. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/**
 * The failure class of a transport error by its catalogue code, or null when it is none of them. An HTTP/2
 * REFUSED_STREAM arrives as `upstream-reset`: the caller that knows the reset code passes 'refused-stream' instead.
 */
export function attemptFailureOf(code: ErrorCode): AttemptFailure | null {
  switch (code) {
    case 'connect-failed':
    case 'connect-timeout':
    case 'tls-handshake-failed':
      return 'connect-failure';
    case 'upstream-reset':
      return 'reset';
    case 'response-timeout':
      return 'timeout';
    default:
      return null;
  }
}

export function headerValue(list: HeaderList | null, name: string): string | undefined {
  if (list === null) return undefined;
  for (let i = 0; i < list.length; i += 2) if (list[i] === name) return list[i + 1];
  return undefined;
}

export class RetryPolicy {
  readonly attempts: number;
  readonly bufferLimitBytes: number;
  private readonly on: number;
  private readonly statusCodes: ReadonlySet<number>;
  private readonly allowNonIdempotent: boolean;
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly maxRetryAfterMs: number;

  constructor(
    options: RetryOptions = {},
    private readonly random: () => number = Math.random,
    private readonly epochNow: () => number = Date.now,
  ) {
    this.attempts = Math.max(0, Math.floor(options.attempts ?? 2));
    let on = 0;
    for (const c of options.retryOn ?? ['connect-failure', 'refused-stream', 'cancelled', 'unavailable']) on |= BIT_OF[c];
    this.on = on;
    this.statusCodes = new Set(options.retriableStatusCodes ?? []);
    this.allowNonIdempotent = options.allowNonIdempotent ?? false;
    this.baseMs = Math.max(0, options.backoffBaseMs ?? 25);
    this.maxMs = Math.max(this.baseMs, options.backoffMaxMs ?? 250);
    this.maxRetryAfterMs = Math.max(0, options.maxRetryAfterMs ?? 10_000);
    this.bufferLimitBytes = Math.max(0, options.bufferLimitBytes ?? 64 * 1024);
  }

  /** Some gRPC status is retried: a gRPC answer without grpc-status in its head must be held until its trailers. */
  get retriesGrpcStatus(): boolean {
    return (this.on & ANY_GRPC) !== 0;
  }

  /**
   * After an attempt that got no response. `retriesSoFar` counts the retries already made (0 after the first try);
   * `bodyReplayable` is ReplayBuffer.replayable (true for a request without a body).
   */
  afterFailure(retriesSoFar: number, method: string, bodyReplayable: boolean, failure: AttemptFailure): RetryVerdict {
    const on = this.on;
    let matched = (on & (ANY_5XX | GATEWAY)) !== 0;
    // Refused connections and streams never reached the app: safe for any method.
    let safe = false;
    if (failure === 'connect-failure') safe = matched = matched || (on & CONNECT) !== 0;
    else if (failure === 'refused-stream') safe = matched = matched || (on & REFUSED) !== 0;
    else if (failure === 'reset') matched = matched || (on & RESET) !== 0;
    if (!matched) return 'not-retriable';
    if (retriesSoFar >= this.attempts) return 'attempts-exhausted';
    if (!safe && !this.allowNonIdempotent && !IDEMPOTENT.has(method)) return 'method-not-idempotent';
    return bodyReplayable ? 'retry' : 'body-not-replayable';
  }

  /**
   * After an attempt that got a response head (and, for gRPC answers that carry their status at the end, its
   * trailers). A gRPC status class is an explicit opt-in by whoever configured it: gRPC calls are all POST.
   */
  afterResponse(retriesSoFar: number, method: string, bodyReplayable: boolean, status: number, headers: HeaderList, trailers: HeaderList | null): RetryVerdict {
    const grpcStatus = headerValue(trailers, 'grpc-status') ?? headerValue(headers, 'grpc-status');
    const grpcBit = grpcStatus === undefined ? 0 : (GRPC_BITS.get(grpcStatus) ?? 0) & this.on;
    const on = this.on;
    const httpMatched =
      ((on & ANY_5XX) !== 0 && status >= 500 && status <= 599) ||
      ((on & GATEWAY) !== 0 && (status === 502 || status === 503 || status === 504)) ||
      ((on & STATUS_CODES) !== 0 && this.statusCodes.has(status));
    if (grpcBit === 0 && !httpMatched) return 'not-retriable';
    if (retriesSoFar >= this.attempts) return 'attempts-exhausted';
    if (grpcBit === 0 && !this.allowNonIdempotent && !IDEMPOTENT.has(method)) return 'method-not-idempotent';
    if (!bodyReplayable) return 'body-not-replayable';
    const retryAfter = headerValue(headers, 'retry-after');
    if (retryAfter !== undefined && parseRetryAfter(retryAfter, this.epochNow()) > this.maxRetryAfterMs) return 'retry-after-too-long';
    return 'retry';
  }

  /**
   * How long to wait before the next retry: what the response's Retry-After asks for when it has one, else
   * exponential backoff with full jitter (random in [0, min(max, base x 2^retriesSoFar))), which spreads retries apart.
   */
  backoffMs(retriesSoFar: number, responseHeaders: HeaderList | null = null): number {
    const retryAfter = headerValue(responseHeaders, 'retry-after');
    if (retryAfter !== undefined) {
      const ms = parseRetryAfter(retryAfter, this.epochNow());
      if (ms >= 0) return Math.min(ms, this.maxRetryAfterMs);
    }
    const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(retriesSoFar, 30));
    return Math.floor(this.random() * ceiling);
  }
}
