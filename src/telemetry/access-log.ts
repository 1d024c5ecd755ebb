// Access logs (opt-in, MeshConfig spec.telemetry.accessLog): one line per finished HTTP exchange on stdout, as JSON or
// as a short text line, fed by the diagnostics channel. Values come out escaped, so no request can forge a line.

import { httpExchangeChannel } from '../core/diagnostics.js';

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

export class AccessLog {
  private format: AccessLogFormat = 'json';
  private on = false;
  private readonly onExchange = (msg: unknown): void => this.sink(formatAccessLine(msg as AccessLogFacts, this.format));

  constructor(private readonly sink: (line: string) => void) {}

  /** Follows the config: subscribes while enabled (no subscriber, no cost), in the configured format. */
  configure(enabled: boolean, format: AccessLogFormat): void {
    this.format = format;
    if (enabled && !this.on) httpExchangeChannel.subscribe(this.onExchange);
    if (!enabled && this.on) httpExchangeChannel.unsubscribe(this.onExchange);
    this.on = enabled;
  }

  close(): void {
    this.configure(false, this.format);
  }
}
