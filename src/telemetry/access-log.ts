// Access logs (opt-in, MeshConfig spec.telemetry.accessLog): one line per finished HTTP exchange or tunnel (TCP,
// CONNECT, WebSocket) on stdout, as JSON or as a short text line, fed by the diagnostics channels. Values come out
// escaped, so no request can forge a line.

import { performance } from 'node:perf_hooks';
import { httpExchangeChannel, tunnelChannel } from '../core/diagnostics.js';

/** What an access-log line reads from a finished exchange (the proxy's HttpExchange satisfies it). */
export interface AccessLogFacts {
  direction: string;
  source: string | null;
  destination: string | null;
  peerIdentity: string | null;
  method: string;
  authority: string;
  path: string;
  route: string | null;
  status: number;
  grpcStatus: string | null;
  responseBytes: number;
  endpoint: string | null;
  errorCode: string | null;
  errorDetail: string | null;
  startTime: number;
  endTime: number;
  attempts?: ReadonlyArray<unknown> | null;
}

/** What a tunnel line reads from a finished tunnel (the proxy's TunnelRecord, as published on close). */
export interface TunnelLogFacts {
  phase: 'open' | 'close';
  direction: string;
  kind: string;
  source: string | null;
  destination: string | null;
  endpoint: string | null;
  error: { code: string; message: string } | null;
  result: { aToB: number; bToA: number; reason: string; error?: { message: string } } | null;
  startTime: number;
}

export type AccessLogFormat = 'json' | 'text';

/** Control characters (and the line breaks among them) as \u escapes, for the text format. */
function clean(s: string): string {
  return /[\u0000-\u001f\u007f"]/.test(s) ? JSON.stringify(s).slice(1, -1) : s;
}

export function formatAccessLine(ex: AccessLogFacts, format: AccessLogFormat, now: Date = new Date()): string {
  const durationMs = Math.round((ex.endTime - ex.startTime) * 1000) / 1000;
  const retries = ex.attempts ? Math.max(0, ex.attempts.length - 1) : 0;
  if (format === 'text') {
    return (
      `${now.toISOString()} ${ex.direction} ${clean(ex.source ?? '-')} -> ${clean(ex.destination ?? '-')} "${clean(ex.method)} ${clean(ex.authority)} ${clean(ex.path)}" ` +
      `${ex.status}${ex.grpcStatus !== null ? ` grpc=${clean(ex.grpcStatus)}` : ''} ${ex.responseBytes}B ${durationMs}ms ${clean(ex.endpoint ?? '-')}` +
      `${retries > 0 ? ` retries=${retries}` : ''}${ex.errorCode !== null ? ` error=${clean(ex.errorCode)}` : ''}${ex.route !== null ? ` route=${clean(ex.route)}` : ''}\n`
    );
  }
  // JSON.stringify escapes CR, LF and every control character.
  return (
    JSON.stringify({
      time: now.toISOString(),
      direction: ex.direction,
      source: ex.source,
      destination: ex.destination,
      peer_identity: ex.peerIdentity,
      method: ex.method,
      authority: ex.authority,
      path: ex.path,
      route: ex.route,
      status: ex.status,
      grpc_status: ex.grpcStatus,
      response_bytes: ex.responseBytes,
      duration_ms: durationMs,
      endpoint: ex.endpoint,
      retries,
      error: ex.errorCode,
      error_detail: ex.errorDetail,
    }) + '\n'
  );
}

/** One line for a tunnel that ended: bytes each way, how long it lasted, how it ended, and the error if it failed. */
export function formatTunnelLine(t: TunnelLogFacts, format: AccessLogFormat, now: Date = new Date(), endTime = performance.now()): string {
  const durationMs = Math.round((endTime - t.startTime) * 1000) / 1000;
  const sent = t.result?.aToB ?? 0;
  const received = t.result?.bToA ?? 0;
  const error = t.error?.code ?? (t.result !== null && t.result.reason !== 'closed' ? t.result.reason : null);
  if (format === 'text') {
    return (
      `${now.toISOString()} ${t.direction} ${clean(t.source ?? '-')} -> ${clean(t.destination ?? '-')} ${t.kind} ${clean(t.endpoint ?? '-')} ` +
      `sent=${sent}B received=${received}B ${durationMs}ms${error !== null ? ` error=${clean(error)}` : ''}\n`
    );
  }
  return (
    JSON.stringify({
      time: now.toISOString(),
      direction: t.direction,
      kind: t.kind,
      source: t.source,
      destination: t.destination,
      endpoint: t.endpoint,
      sent_bytes: sent,
      received_bytes: received,
      duration_ms: durationMs,
      error,
      error_detail: t.error?.message ?? t.result?.error?.message ?? null,
    }) + '\n'
  );
}

export class AccessLog {
  private format: AccessLogFormat = 'json';
  private on = false;
  private readonly onExchange = (msg: unknown): void => this.sink(formatAccessLine(msg as AccessLogFacts, this.format));
  private readonly onTunnel = (msg: unknown): void => {
    const t = msg as TunnelLogFacts;
    if (t.phase === 'close') this.sink(formatTunnelLine(t, this.format));
  };

  constructor(private readonly sink: (line: string) => void) {}

  /** Follows the config: subscribes while enabled (no subscriber, no cost), in the configured format. */
  configure(enabled: boolean, format: AccessLogFormat): void {
    this.format = format;
    if (enabled && !this.on) {
      httpExchangeChannel.subscribe(this.onExchange);
      tunnelChannel.subscribe(this.onTunnel);
    }
    if (!enabled && this.on) {
      httpExchangeChannel.unsubscribe(this.onExchange);
      tunnelChannel.unsubscribe(this.onTunnel);
    }
    this.on = enabled;
  }

  close(): void {
    this.configure(false, this.format);
  }
}
