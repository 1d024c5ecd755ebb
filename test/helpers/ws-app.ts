// A WebSocket test app (the `ws` package): /echo echoes every message with its type, /push speaks first and closes
// with 4002, /reject refuses the handshake with 401; it records how each connection was closed by the client.

import http from 'node:http';
import type net from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

export interface WsClose {
  code: number;
  reason: string;
}

export interface WsApp {
  port: number;
  /** Resolves with the close frame the server received on the connection opened with `?id=<id>`. */
  closeOf(id: string): Promise<WsClose>;
  /** Request headers of the upgrade request with `?id=<id>`. */
  headersOf(id: string): http.IncomingHttpHeaders | undefined;
  close(): Promise<void>;
}

export async function startWsApp(): Promise<WsApp> {
  const server = http.createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' });
    res.end('upgrade required\n');
  });
  const wss = new WebSocketServer({
    server,
    maxPayload: 64 * 1024 * 1024,
    // Negotiated only when a client offers it (the default ws client does), so the extension handshake is tested.
    perMessageDeflate: { threshold: 1024 },
    verifyClient: (info: { req: http.IncomingMessage }, cb: (ok: boolean, code?: number, message?: string, headers?: http.OutgoingHttpHeaders) => void) => {
      if ((info.req.url ?? '').startsWith('/reject')) cb(false, 401, 'Unauthorized', { 'www-authenticate': 'Bearer realm="test"' });
      else cb(true);
    },
  });
  const closes = new Map<string, { promise: Promise<WsClose>; resolve: (c: WsClose) => void }>();
  const headers = new Map<string, http.IncomingHttpHeaders>();
  const entry = (id: string) => {
    let e = closes.get(id);
    if (!e) {
      let resolve!: (c: WsClose) => void;
      const promise = new Promise<WsClose>((r) => (resolve = r));
      e = { promise, resolve };
      closes.set(id, e);
    }
    return e;
  };
  wss.on('connection', (ws: WebSocket, req: http.IncomingMessage) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const id = url.searchParams.get('id') ?? '';
    headers.set(id, req.headers);
    const e = entry(id);
    ws.on('close', (code, reason) => e.resolve({ code, reason: reason.toString() }));
    ws.on('error', () => {});
    if (url.pathname === '/push') {
      // Server speaks first: three messages without any client message, then a close with an application code.
      ws.send('server-hello-1');
      ws.send(Buffer.from([1, 2, 3]));
      ws.send('server-hello-3', () => ws.close(4002, 'server-done'));
      return;
    }
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary && data.toString() === 'ping-me') {
        // Server-initiated ping: report the pong the client (its ws library) answers with.
        ws.once('pong', (p: Buffer) => ws.send(`got-pong:${p.toString()}`));
        ws.ping(Buffer.from('server-ping'));
        return;
      }
      ws.send(data, { binary: isBinary });
    });
  });
  const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
  return {
    port,
    closeOf: (id) => entry(id).promise,
    headersOf: (id) => headers.get(id),
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
