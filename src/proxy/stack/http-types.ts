// The types every HTTP layer speaks: a request as the proxy forwards it, the sink a response streams into,
// and the client interface that transports implement. Kept protocol-neutral so that HTTP/1.1 and HTTP/2 mix freely.

import type { Readable } from 'node:stream';
import type { MycelError } from '../../core/errors.js';

/** Header fields as a flat list [name, value, name, value, ...]; names lower-case; no pseudo-headers, no hop-by-hop fields. */
export type HeaderList = string[];

export interface UpstreamRequest {
  readonly method: string;
  /** host[:port] as the upstream should see it (Host for HTTP/1.1, :authority for HTTP/2). */
  authority: string;
  /** origin-form target: path and query. */
  path: string;
  headers: HeaderList;
  /** The request body as it streams in from the client; null when the request has none. */
  readonly body: Readable | null;
  /** Body length from Content-Length, or -1 when unknown (chunked, or HTTP/2 without content-length). */
  readonly bodyLength: number;
  /** Trailer fields of the request body, known once the body has ended. */
  requestTrailers(): HeaderList | null;
  /** Transports report each body chunk they send (for mycel_request_bytes_total); per chunk, not per request. */
  countBody(bytes: number): void;
}

/** Where a response goes as it arrives; implemented by the exchange that owns the client side. */
export interface ResponseSink {
  onInformational(status: number, headers: HeaderList): void;
  onResponseHead(status: number, headers: HeaderList): void;
  /** Returns false when the receiver is full; the sender then waits for UpstreamCall.resume(). */
  onResponseData(chunk: Buffer): boolean;
  onResponseEnd(trailers: HeaderList | null): void;
  /** The upstream failed; after this no other method is called. */
  onResponseError(err: MycelError): void;
  /** Optional: the request waited for a new connection, which is up now (what follows is the endpoint's latency). */
  onConnected?(): void;
}

/** A request in flight on some transport. */
export interface UpstreamCall {
  /** Resume delivering response data after onResponseData returned false. */
  resume(): void;
  /** Give up on the request (the client went away, or a timeout fired); no sink method is called afterwards. */
  abort(): void;
}

export interface HttpClient {
  request(req: UpstreamRequest, sink: ResponseSink): UpstreamCall;
  /** Closes idle connections now and busy ones when their request completes. */
  close(): void;
}

/**
 * Hop-by-hop fields (RFC 9110 section 7.6.1) plus HTTP/2-forbidden connection-specific ones; never forwarded.
 * `te` is not here: `te: trailers` is end-to-end meaningful for gRPC and is kept; other TE values are dropped.
 */
export const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'transfer-encoding',
  'upgrade',
  'host',
  'http2-settings',
]);

/** Between sidecars, the client's original protocol rides along when HTTP/1.1 travels as HTTP/2. */
export const ORIG_PROTO_HEADER = 'mycel-orig-proto';

/** A copy of `list` without the fields named `name`. */
export function withoutField(list: HeaderList, name: string): HeaderList {
  const out: HeaderList = [];
  for (let i = 0; i < list.length; i += 2) if (list[i] !== name) out.push(list[i] as string, list[i + 1] as string);
  return out;
}
