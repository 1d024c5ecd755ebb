// Real upstream apps for tests on 127.0.0.1 port 0: an HTTP/1.1 app, an h2c app, and a TCP echo, each recording
// what reached it so tests can prove what did (and did not) get through the mesh.

import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { createHash } from 'node:crypto';

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  bodyBytes: number;
  bodySha256: string;
  trailers: Record<string, string | undefined>;
}

export interface TestApp {
  port: number;
  seen: SeenRequest[];
  close(): Promise<void>;
}

function listenOn(server: net.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
}

function closeServer(server: net.Server & { closeAllConnections?: () => void }): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections?.();
  });
}

/** Streams `n` deterministic bytes in chunks of `chunk`, respecting backpressure. */
export function writePattern(res: NodeJS.WritableStream & { write(c: Buffer): boolean }, n: number, chunk = 16 * 1024, done?: () => void): void {
  let sent = 0;
  const block = Buffer.alloc(chunk);
  for (let i = 0; i < chunk; i++) block[i] = (i * 31 + 7) & 0xff;
  const pump = () => {
    while (sent < n) {
      const len = Math.min(chunk, n - sent);
      sent += len;
      if (!res.write(len === chunk ? block : block.subarray(0, len))) {
        res.once('drain', pump);
        return;
      }
    }
    done?.();
  };
  pump();
}

export function patternSha256(n: number, chunk = 16 * 1024): string {
  const h = createHash('sha256');
  const block = Buffer.alloc(chunk);
  for (let i = 0; i < chunk; i++) block[i] = (i * 31 + 7) & 0xff;
  let left = n;
  while (left > 0) {
    const len = Math.min(chunk, left);
    h.update(len === chunk ? block : block.subarray(0, len));
    left -= len;
  }
  return h.digest('hex');
}

/** Routes: /hello, /echo (streams the body back), /big?n=BYTES, /trailers, /headers, /status/CODE, /slow?ms=N, /close. */
export function handleHttp(req: IncomingMessage, res: ServerResponse, seen: SeenRequest[]): void {
  const url = new URL(req.url ?? '/', 'http://x');
  const hash = createHash('sha256');
  let bytes = 0;
  const record = () => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, bodyBytes: bytes, bodySha256: hash.digest('hex'), trailers: { ...req.trailers } });
  };
  if (url.pathname === '/echo') {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-request-content-length': req.headers['content-length'] ?? 'none', 'x-request-te': req.headers['transfer-encoding'] ?? 'none' });
    req.on('data', (d: Buffer) => {
      bytes += d.length;
      hash.update(d);
      if (!res.write(d)) {
        req.pause();
        res.once('drain', () => req.resume());
      }
    });
    req.on('end', () => {
      record();
      const t = req.trailers['x-checksum'];
      if (t !== undefined) res.addTrailers({ 'x-echo-checksum': t });
      res.end();
    });
    return;
  }
  req.on('data', (d: Buffer) => {
    bytes += d.length;
    hash.update(d);
  });
  req.on('end', () => {
    record();
    if (url.pathname === '/big') {
      const n = Number(url.searchParams.get('n') ?? '0');
      res.writeHead(200, url.searchParams.get('chunked') ? {} : { 'content-length': String(n) });
      writePattern(res, n, 16 * 1024, () => res.end());
    } else if (url.pathname === '/trailers') {
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-trailer-one' });
      res.write('body with trailers');
      res.addTrailers({ 'x-trailer-one': 'yes' });
      res.end();
    } else if (url.pathname === '/headers') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ headers: req.headers, rawHeaders: req.rawHeaders, url: req.url }));
    } else if (url.pathname.startsWith('/status/')) {
      res.writeHead(Number(url.pathname.slice(8)), { 'content-type': 'text/plain' });
      res.end(`status ${url.pathname.slice(8)}\n`);
    } else if (url.pathname === '/slow') {
      setTimeout(() => res.end('slow done\n'), Number(url.searchParams.get('ms') ?? '100'));
    } else if (url.pathname === '/close') {
      req.socket.destroy();
    } else if (url.pathname === '/cookies') {
      res.writeHead(200, [['set-cookie', 'a=1'], ['set-cookie', 'b=2'], ['content-type', 'text/plain']].flat());
      res.end('cookies');
    } else {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-app': 'http1' });
      res.end(req.method === 'HEAD' ? undefined : `hello ${req.method} ${req.url}\n`);
    }
  });
}

export async function startHttpApp(): Promise<TestApp> {
  const seen: SeenRequest[] = [];
  const server = http.createServer((req, res) => handleHttp(req, res, seen));
  // Relay Expect: 100-continue decisions: /reject-continue answers 417 without reading, others continue.
  server.on('checkContinue', (req, res) => {
    if (req.url === '/reject-continue') {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, bodyBytes: 0, bodySha256: '', trailers: {} });
      res.writeHead(417, { 'content-type': 'text/plain', connection: 'close' });
      res.end('no body wanted\n');
      return;
    }
    res.writeContinue();
    handleHttp(req, res, seen);
  });
  server.keepAliveTimeout = 5000;
  const port = await listenOn(server);
  return { port, seen, close: () => closeServer(server) };
}

/** An h2c (prior knowledge) app with the same routes as the HTTP/1.1 app where they make sense. */
export async function startH2App(): Promise<TestApp> {
  const seen: SeenRequest[] = [];
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    const path = String(headers[':path'] ?? '/');
    const url = new URL(path, 'http://x');
    const hash = createHash('sha256');
    let bytes = 0;
    stream.on('error', () => {});
    stream.on('data', (d: Buffer) => {
      bytes += d.length;
      hash.update(d);
    });
    stream.on('end', () => {
      // Node emits 'end' even after 'aborted' on a reset stream; an app must not take that body as complete.
      if (stream.aborted) return;
      seen.push({ method: String(headers[':method']), url: path, headers: headers as http.IncomingHttpHeaders, rawHeaders: [], bodyBytes: bytes, bodySha256: hash.digest('hex'), trailers: {} });
      if (stream.destroyed) return;
      if (url.pathname === '/big') {
        const n = Number(url.searchParams.get('n') ?? '0');
        stream.respond({ ':status': 200, 'content-length': String(n) });
        writePattern(stream, n, 16 * 1024, () => stream.end());
      } else if (url.pathname === '/headers') {
        stream.respond({ ':status': 200, 'content-type': 'application/json' });
        stream.end(JSON.stringify({ headers, url: path }));
      } else {
        stream.respond({ ':status': 200, 'content-type': 'text/plain', 'x-app': 'h2' });
        stream.end(`hello h2 ${headers[':method']} ${path} bytes=${bytes}\n`);
      }
    });
  });
  const port = await listenOn(server as unknown as net.Server);
  return { port, seen, close: () => closeServer(server as unknown as net.Server) };
}

/** A TCP echo app; `greeting` makes it speak first (like SMTP or a database banner). */
export async function startTcpEcho(greeting?: string): Promise<TestApp & { connections: number }> {
  const app = { port: 0, seen: [] as SeenRequest[], connections: 0, close: async () => {} };
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    app.connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    if (greeting !== undefined) s.write(greeting);
    s.pipe(s);
  });
  app.port = await listenOn(server);
  app.close = () => {
    for (const s of sockets) s.destroy();
    return new Promise((r) => server.close(() => r()));
  };
  return app;
}

/** A bare TCP server on 127.0.0.1 that hands each connection to `onConnection` (e.g. greet and close, or stay silent). */
export async function startRawTcp(onConnection: (s: net.Socket) => void): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    onConnection(s);
  });
  const port = await listenOn(server);
  return {
    port,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}
