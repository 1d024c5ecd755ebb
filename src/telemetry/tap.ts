// Tap: the live stream of request events (no bodies) that `mycel tap` and the sidecar's admin /tap show. A TapHub
// subscribes to the exchange and tunnel channels only while at least one tap is open, filters each finished exchange
// (or tunnel) per tap, and hands the matching ones over as TapEvents.

import { performance } from 'node:perf_hooks';
import { TAP_MAX_TEXT, type TapEvent, type TapFilter } from '../api/v1alpha1/stream-messages.js';
import { httpExchangeChannel, tunnelChannel } from '../core/diagnostics.js';
import { ERROR_CATALOGUE, type ErrorCode } from '../core/error-catalogue.js';
import type { AccessLogFacts, TunnelLogFacts } from './access-log.js';

export type { TapEvent, TapFilter };

/** What tap reads from a finished exchange (the proxy's HttpExchange satisfies it): the access log's facts and the headers. */
export interface TapFacts extends Omit<AccessLogFacts, 'responseBytes' | 'errorDetail'> {
  headers: readonly string[];
  /** This hop's span when tracing is on (its trace id wins over the request's headers: a new trace has none there). */
  trace?: { readonly traceId: string } | null;
}

/** Unix ms of a performance.now() time; wall clock minus monotonic now follows clock adjustments (timeOrigin does not). */
function unixMs(t: number): number {
  return Math.round(Date.now() - performance.now() + t);
}

const STATUS = /^(?:[1-5]\d\d|[1-5]xx)$/;
const NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
const METHOD = /^[A-Z]{1,20}$/;

/** Reads a filter from query parameters; returns an Error naming the bad parameter. */
export function parseTapFilter(q: URLSearchParams): TapFilter | Error {
  const f: TapFilter = {};
  const service = q.get('service');
  if (service !== null && service !== '') {
    if (!NAME.test(service)) return new Error(`service "${service}" is no service name`);
    f.service = service;
  }
  const path = q.get('path');
  if (path !== null && path !== '') {
    if (!path.startsWith('/') || path.length > 1024) return new Error('path must start with / (and be at most 1024 characters)');
    f.path = path;
  }
  const method = q.get('method');
  if (method !== null && method !== '') {
    if (!METHOD.test(method.toUpperCase())) return new Error(`method "${method}" is no HTTP method`);
    f.method = method.toUpperCase();
  }
  const status = q.get('status');
  if (status !== null && status !== '') {
    if (!STATUS.test(status.toLowerCase())) return new Error(`status "${status}" must be a code (503) or a class (5xx)`);
    f.status = status.toLowerCase();
  }
  const direction = q.get('direction');
  if (direction !== null && direction !== '') {
    if (direction !== 'inbound' && direction !== 'outbound') return new Error('direction must be inbound or outbound');
    f.direction = direction;
  }
  return f;
}

/** The `limit` parameter: how many events before the stream ends (0: until the client goes). */
export function parseTapLimit(q: URLSearchParams): number | Error {
  const text = q.get('limit');
  if (text === null || text === '') return 0;
  const n = Number(text);
  return Number.isInteger(n) && n >= 0 && n <= 1_000_000 ? n : new Error('limit must be a whole number from 0 to 1000000');
}

/** The filter as query parameters (the inverse of parseTapFilter). */
export function tapFilterQuery(f: TapFilter): URLSearchParams {
  const q = new URLSearchParams();
  for (const k of ['service', 'path', 'method', 'status', 'direction'] as const) {
    const v = f[k];
    if (v !== undefined) q.set(k, v);
  }
  return q;
}

/** The fields a filter looks at. */
type Matchable = Pick<TapFacts, 'direction' | 'source' | 'destination' | 'method' | 'path' | 'status'>;

export function matchesTap(f: TapFilter, ex: Matchable): boolean {
  if (f.direction !== undefined && ex.direction !== f.direction) return false;
  if (f.service !== undefined && ex.destination !== f.service && ex.source !== f.service) return false;
  if (f.method !== undefined && ex.method !== f.method) return false;
  if (f.path !== undefined && !ex.path.startsWith(f.path)) return false;
  if (f.status !== undefined) {
    const s = f.status;
    if (s.endsWith('xx') ? Math.floor(ex.status / 100) !== s.charCodeAt(0) - 48 : String(ex.status) !== s) return false;
  }
  return true;
}

/** The trace id of a W3C traceparent or B3 header, if the request carries one. */
function traceIdOf(headers: readonly string[]): string | null {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i];
    if (name === 'traceparent') {
      const m = /^[0-9a-f]{2}-([0-9a-f]{32})-/.exec(headers[i + 1] ?? '');
      if (m !== null) return m[1]!;
    } else if (name === 'x-b3-traceid') {
      const v = headers[i + 1] ?? '';
      if (/^[0-9a-f]{16,32}$/.test(v)) return v;
    } else if (name === 'b3') {
      const m = /^([0-9a-f]{16,32})-/.exec(headers[i + 1] ?? '');
      if (m !== null) return m[1]!;
    }
  }
  return null;
}

/** Builds the event; `self` is this proxy's own SPIFFE identity (the other side's is the exchange's peer). */
export function tapEventOf(ex: TapFacts, proxy: string, self: string | null): TapEvent {
  const inbound = ex.direction === 'inbound';
  return {
    time: unixMs(ex.startTime),
    proxy,
    direction: ex.direction,
    sourceService: ex.source,
    destinationService: ex.destination,
    sourceIdentity: inbound ? ex.peerIdentity : self,
    destinationIdentity: inbound ? self : ex.peerIdentity,
    method: ex.method,
    authority: ex.authority.length > TAP_MAX_TEXT ? ex.authority.slice(0, TAP_MAX_TEXT) : ex.authority,
    path: ex.path.length > TAP_MAX_TEXT ? ex.path.slice(0, TAP_MAX_TEXT) : ex.path,
    status: ex.status,
    grpcStatus: ex.grpcStatus,
    latencyMs: Math.round((ex.endTime - ex.startTime) * 1000) / 1000,
    route: ex.route,
    endpoint: ex.endpoint,
    retries: ex.attempts ? Math.max(0, ex.attempts.length - 1) : 0,
    error: ex.errorCode,
    traceId: ex.trace?.traceId ?? traceIdOf(ex.headers),
  };
}

/** A finished tunnel as an event: method CONNECT, UPGRADE or TCP, status 200/101/0 (or the error's), no path. */
export function tunnelEventOf(t: TunnelLogFacts, proxy: string, self: string | null, endTime = performance.now()): TapEvent {
  const code = t.error?.code ?? null;
  const spec = code !== null && code in ERROR_CATALOGUE ? ERROR_CATALOGUE[code as ErrorCode] : null;
  return {
    time: unixMs(t.startTime),
    proxy,
    direction: t.direction,
    sourceService: t.source,
    destinationService: t.destination,
    sourceIdentity: t.direction === 'inbound' ? null : self,
    destinationIdentity: t.direction === 'inbound' ? self : null,
    method: t.kind.toUpperCase(),
    authority: t.destination ?? '',
    path: '',
    status: spec !== null ? spec.status : t.kind === 'connect' ? 200 : t.kind === 'upgrade' ? 101 : 0,
    grpcStatus: null,
    latencyMs: Math.round((endTime - t.startTime) * 1000) / 1000,
    route: null,
    endpoint: t.endpoint,
    retries: 0,
    error: code,
    traceId: null,
  };
}

interface Tap {
  readonly filter: TapFilter;
  readonly sink: (ev: TapEvent) => void;
}

/** The open taps of one proxy. Subscribed to the exchange channel only while one is open. */
export class TapHub {
  private readonly taps = new Set<Tap>();
  private readonly onExchange = (msg: unknown): void => this.dispatch(msg as TapFacts);
  private readonly onTunnel = (msg: unknown): void => {
    if ((msg as TunnelLogFacts).phase === 'close') this.dispatchTunnel(msg as TunnelLogFacts);
  };

  /**
   * @param proxy this proxy's name in events
   * @param self returns this proxy's own SPIFFE identity (it may rotate)
   */
  constructor(
    private readonly proxy: string,
    private readonly self: () => string | null,
  ) {}

  get open(): number {
    return this.taps.size;
  }

  /** Starts a tap; the returned function ends it (idempotent). The sink must not block: it gets every match. */
  tap(filter: TapFilter, sink: (ev: TapEvent) => void): () => void {
    const t: Tap = { filter, sink };
    if (this.taps.size === 0) this.subscribe(true);
    this.taps.add(t);
    return () => {
      if (!this.taps.delete(t)) return;
      if (this.taps.size === 0) this.subscribe(false);
    };
  }

  /** Ends every tap (sidecar shutdown). */
  close(): void {
    if (this.taps.size > 0) this.subscribe(false);
    this.taps.clear();
  }

  private subscribe(on: boolean): void {
    if (on) {
      httpExchangeChannel.subscribe(this.onExchange);
      tunnelChannel.subscribe(this.onTunnel);
    } else {
      httpExchangeChannel.unsubscribe(this.onExchange);
      tunnelChannel.unsubscribe(this.onTunnel);
    }
  }

  private dispatchTunnel(t: TunnelLogFacts): void {
    const ev = tunnelEventOf(t, this.proxy, this.self());
    const view: Matchable = { direction: ev.direction, source: ev.sourceService, destination: ev.destinationService, method: ev.method, path: ev.path, status: ev.status };
    for (const tap of this.taps) if (matchesTap(tap.filter, view)) tap.sink(ev);
  }

  private dispatch(ex: TapFacts): void {
    let event: TapEvent | null = null;
    for (const t of this.taps) {
      if (!matchesTap(t.filter, ex)) continue;
      event ??= tapEventOf(ex, this.proxy, this.self());
      t.sink(event);
    }
  }
}
