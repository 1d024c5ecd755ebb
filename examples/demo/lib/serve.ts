// How every demo app runs: it listens on 127.0.0.1:$PORT, says so on stdout, and on SIGTERM or SIGINT stops taking
// connections and exits once the open ones are done (or after 2 s).

import type { Http2Session } from 'node:http2';
import type { Server } from 'node:net';

export function serve(name: string, server: Server & { closeAllConnections?: () => void; closeIdleConnections?: () => void }): void {
  const port = Number(process.env.PORT);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    process.stderr.write(`${name}: set PORT to the port to listen on\n`);
    process.exit(2);
  }
  server.listen(port, '127.0.0.1', () => process.stdout.write(`${name} listening on 127.0.0.1:${port}\n`));
  // HTTP/2 sessions (a sidecar keeps one open) hold close() until they end: they are asked to finish (GOAWAY).
  const sessions = new Set<Http2Session>();
  server.on('session', (s: Http2Session) => {
    sessions.add(s);
    s.once('close', () => sessions.delete(s));
  });
  const stop = (signal: string) => {
    process.stdout.write(`${name}: ${signal}, stopping\n`);
    server.close(() => process.exit(0));
    server.closeIdleConnections?.();
    for (const s of sessions) s.close();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

/** A JSON answer. */
export function sendJson(res: { writeHead(status: number, headers: Record<string, string>): unknown; end(body: string): unknown }, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body) + '\n');
}
