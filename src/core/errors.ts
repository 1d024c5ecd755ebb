// The one error type of the mesh: a stable catalogue code plus what the code implies (status, source, retryable).

import { ERROR_CATALOGUE, type ErrorCode, type ErrorSource } from './error-catalogue.js';

export class MycelError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly grpcStatus: number;
  readonly source: ErrorSource;
  readonly retryable: boolean;
  /** Fields the error response carries besides x-mycel-error, as [name, value, ...] (a rate limit's Retry-After). */
  readonly headers: readonly string[] | null;
  /** The upstream said it did not process the request (HTTP/2 REFUSED_STREAM): a retry is safe for any method. */
  readonly unprocessed: boolean;
  /** What the reason applies to, written after the code in x-mycel-error (`denied-by default/only-web`); null: nothing. */
  readonly subject: string | null;

  /** `status` / `grpcStatus` replace the catalogue's (a Fault answers with the status it was configured with). */
  constructor(
    code: ErrorCode,
    detail?: string,
    options?: { cause?: unknown; retryable?: boolean; status?: number; grpcStatus?: number; headers?: readonly string[]; unprocessed?: boolean; subject?: string },
  ) {
    super(detail ? `${code}: ${detail}` : code, options?.cause === undefined ? undefined : { cause: options.cause });
    const spec = ERROR_CATALOGUE[code];
    this.name = 'MycelError';
    this.code = code;
    this.status = options?.status ?? spec.status;
    this.grpcStatus = options?.grpcStatus ?? spec.grpcStatus;
    this.source = spec.source;
    this.retryable = options?.retryable ?? spec.retryable;
    this.headers = options?.headers ?? null;
    this.unprocessed = options?.unprocessed ?? false;
    this.subject = options?.subject ?? null;
  }
}

/** Turns anything thrown or emitted into a MycelError, guessing the code from Node's errno where there is one. */
export function toMycelError(err: unknown, fallback: ErrorCode = 'internal'): MycelError {
  if (err instanceof MycelError) return err;
  const e = err as (NodeJS.ErrnoException & { cause?: unknown }) | undefined;
  // A wrapper (Node cancels pending HTTP/2 streams when the session fails to connect) says less than its cause.
  const cause = e?.cause as NodeJS.ErrnoException | undefined;
  if (cause instanceof Error && typeof cause.code === 'string' && cause.code !== e?.code) {
    const fromCause = toMycelError(cause, fallback);
    if (fromCause.code !== fallback) return new MycelError(fromCause.code, message(e), { cause: err });
  }
  const errno = e?.code;
  const text = message(e ?? err);
  switch (errno) {
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
      return new MycelError('connect-failed', text, { cause: err });
    case 'ECONNRESET':
    case 'EPIPE':
    case 'ERR_STREAM_PREMATURE_CLOSE':
    case 'ERR_HTTP2_STREAM_ERROR':
    case 'ERR_HTTP2_SESSION_ERROR':
    case 'ERR_HTTP2_GOAWAY_SESSION':
    case 'ERR_HTTP2_STREAM_CANCEL':
      return new MycelError('upstream-reset', text, { cause: err });
    case 'ETIMEDOUT':
      return new MycelError('connect-timeout', text, { cause: err });
    default:
      if (errno?.startsWith('ERR_SSL') || errno?.startsWith('ERR_TLS') || errno === 'CERT_HAS_EXPIRED' || errno === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' || errno === 'DEPTH_ZERO_SELF_SIGNED_CERT' || errno === 'SELF_SIGNED_CERT_IN_CHAIN') {
        return new MycelError('tls-handshake-failed', text, { cause: err });
      }
      return new MycelError(fallback, text, { cause: err });
  }
}

function message(e: unknown): string {
  if (e instanceof Error) {
    const c = (e as { cause?: unknown }).cause;
    return c instanceof Error && !e.message.includes(c.message) ? `${e.message} (${c.message})` : e.message;
  }
  return String(e);
}
