// Raw-socket tools for hostile-input tests: send exact bytes over TCP or mTLS and collect what comes back, parse
// HTTP/1.1 responses from a byte stream, a recording TCP tap in front of an app (proves no byte got through), and
// process facts (RSS, liveness) of a sidecar.

import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface RawTarget {
  host: string;
  port: number;
  /** Connect with TLS using these options (host/port are filled in). */
  tls?: tls.ConnectionOptions;
}

export function targetOf(addr: string, tlsOptions?: tls.ConnectionOptions): RawTarget {
  const i = addr.lastIndexOf(':');
  return { host: addr.slice(0, i), port: Number(addr.slice(i + 1)), ...(tlsOptions ? { tls: tlsOptions } : {}) };
}

/** Client TLS options for api.inbound with a workload certificate from the mesh directory (web's by default). */
export async function meshClientTls(dir: string, service = 'web', alpn: string[] = ['http/1.1']): Promise<tls.ConnectionOptions> {
  const [cert, key, ca] = await Promise.all([readFile(join(dir, `${service}.crt`)), readFile(join(dir, `${service}.key`)), readFile(join(dir, 'ca.crt'))]);
  return {
    cert,
    key,
    ca,
    ALPNProtocols: alpn,
    // Workload certificates carry a SPIFFE URI SAN only, no DNS name: chain verification stays on, name check is off.
    checkServerIdentity: () => undefined,
  };
}

/** Opens a socket to the target (TCP, or TLS after the handshake). */
export function openSocket(t: RawTarget, timeoutMs = 5000): Promise<net.Socket | tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`connect to ${t.host}:${t.port} timed out`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      s.off('error', fail);
      resolve(s);
    };
    const fail = (err: Error) => {
      clearTimeout(timer);
      reject(err);
    };
    const s: net.Socket | tls.TLSSocket = t.tls ? tls.connect({ ...t.tls, host: t.host, port: t.port }, done) : net.connect(t.port, t.host, done);
    s.once('error', fail);
  });
}

export interface RawResult {
  /** Every byte the server sent. */
  data: Buffer;
  /** The server closed (FIN, reset or error) before the deadline. */
  closed: boolean;
  /** A socket error, if one ended it (e.g. ECONNRESET). */
  error: string | null;
  /** Milliseconds from the first write to close (or to the deadline). */
  ms: number;
}

/**
 * Connects, writes `parts` (a Buffer/string, or a list written one by one with `gapMs` between them), and collects
 * the answer until the server closes or `timeoutMs` passes; the socket is always destroyed at the end.
 */
export async function rawExchange(t: RawTarget, parts: Buffer | string | Array<Buffer | string>, o: { timeoutMs?: number; gapMs?: number } = {}): Promise<RawResult> {
  const s = await openSocket(t);
  return collect(s, parts, o);
}

/** Like rawExchange on an already open socket. */
export function collect(s: net.Socket, parts: Buffer | string | Array<Buffer | string>, o: { timeoutMs?: number; gapMs?: number } = {}): Promise<RawResult> {
  const list = Array.isArray(parts) ? parts : [parts];
  const timeoutMs = o.timeoutMs ?? 5000;
  const start = Date.now();
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: string | null = null;
    let finished = false;
    let gapTimer: NodeJS.Timeout | null = null;
    const finish = (closed: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      if (gapTimer !== null) clearTimeout(gapTimer);
      s.destroy();
      resolve({ data: Buffer.concat(chunks), closed, error, ms: Date.now() - start });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message;
    });
    s.on('end', () => finish(true));
    s.on('close', () => finish(true));
    let i = 0;
    const next = () => {
      gapTimer = null;
      if (finished || s.destroyed || !s.writable) return;
      const p = list[i++];
      if (p === undefined) return;
      s.write(p, () => {});
      if (i < list.length) gapTimer = setTimeout(next, o.gapMs ?? 0);
    };
    next();
  });
}

export interface ParsedResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** Parses consecutive HTTP/1.1 responses (Content-Length, chunked, or read-to-close bodies); stops at the first incomplete one. */
export function parseResponses(buf: Buffer, max = Infinity): ParsedResponse[] {
  const out: ParsedResponse[] = [];
  let off = 0;
  while (off < buf.length && out.length < max) {
    const end = buf.indexOf('\r\n\r\n', off);
    if (end === -1) break;
    const head = buf.toString('latin1', off, end).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '');
    if (!m) break;
    const headers: Record<string, string> = {};
    for (const line of head.slice(1)) {
      const c = line.indexOf(':');
      if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
    }
    const status = Number(m[1]);
    let p = end + 4;
    if (status < 200 || status === 204 || status === 304) {
      if (status >= 200) out.push({ status, headers, body: Buffer.alloc(0) });
      off = p;
      continue;
    }
    if (headers['transfer-encoding']?.toLowerCase().includes('chunked')) {
      const parts: Buffer[] = [];
      let complete = false;
      for (;;) {
        const le = buf.indexOf('\r\n', p);
        if (le === -1) break;
        const size = parseInt(buf.toString('latin1', p, le).split(';')[0] ?? '', 16);
        if (!Number.isFinite(size)) break;
        p = le + 2;
        if (size === 0) {
          const te = buf.indexOf('\r\n\r\n', p - 2);
          if (te === -1) break;
          p = te + 4;
          complete = true;
          break;
        }
        if (p + size + 2 > buf.length) break;
        parts.push(buf.subarray(p, p + size));
        p += size + 2;
      }
      if (!complete) break;
      out.push({ status, headers, body: Buffer.concat(parts) });
      off = p;
    } else if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (p + n > buf.length) break;
      out.push({ status, headers, body: buf.subarray(p, p + n) });
      off = p + n;
    } else {
      out.push({ status, headers, body: buf.subarray(p) });
      off = buf.length;
    }
  }
  return out;
}

export interface Tap {
  port: number;
  /** Connections accepted so far. */
  connections: number;
  /** Bytes received from the sidecar (towards the app), total. */
  bytesIn: number;
  /** The last bytes towards the app, as latin1 text (bounded to the most recent 4 MiB). */
  text(): string;
  /** Whether `needle` appeared in anything sent towards the app since mark `since` (a bytesIn value). */
  sawSince(since: number, needle: string): boolean;
  close(): Promise<void>;
}

const TAP_KEEP = 4 * 1024 * 1024;

/** A TCP relay on 127.0.0.1 in front of an app that records everything the sidecar sends to the app. */
export async function startTap(appPort: number): Promise<Tap> {
  let kept: Buffer[] = [];
  let keptBytes = 0;
  let keptStart = 0; // bytesIn offset of kept[0]
  const sockets = new Set<net.Socket>();
  const tap: Tap = {
    port: 0,
    connections: 0,
    bytesIn: 0,
    text: () => Buffer.concat(kept).toString('latin1'),
    sawSince(since: number, needle: string) {
      const all = Buffer.concat(kept);
      const from = Math.max(0, since - keptStart - needle.length);
      return all.indexOf(needle, from, 'latin1') !== -1;
    },
    close: async () => {},
  };
  const server = net.createServer({ allowHalfOpen: true }, (down) => {
    tap.connections++;
    const up = net.connect(appPort, '127.0.0.1');
    sockets.add(down);
    sockets.add(up);
    down.on('close', () => sockets.delete(down));
    up.on('close', () => sockets.delete(up));
    down.on('error', () => up.destroy());
    up.on('error', () => down.destroy());
    down.on('data', (d: Buffer) => {
      tap.bytesIn += d.length;
      kept.push(d);
      keptBytes += d.length;
      while (keptBytes > TAP_KEEP && kept.length > 1) {
        const first = kept.shift() as Buffer;
        keptBytes -= first.length;
        keptStart += first.length;
      }
    });
    down.pipe(up);
    up.pipe(down);
  });
  // A deep accept backlog, so that a burst of connections from the sidecar is not slowed down by the tap itself.
  await new Promise<void>((r) => server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => r()));
  tap.port = (server.address() as net.AddressInfo).port;
  tap.close = () => {
    for (const s of sockets) s.destroy();
    kept = [];
    return new Promise((r) => server.close(() => r()));
  };
  return tap;
}

/** Resident set size of a process in MB (0 when it is gone). */
export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** True while the process exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  try {
    const st = /State:\s+(\S)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return st !== null && st[1] !== 'Z' && st[1] !== 'X';
  } catch {
    return false;
  }
}

/** Samples the max RSS of some processes every `everyMs` until stop() is called. */
export function sampleRss(pids: number[], everyMs = 50): { stop(): number; max(): number } {
  let max = 0;
  const tick = () => {
    for (const p of pids) max = Math.max(max, rssMb(p));
  };
  tick();
  const t = setInterval(tick, everyMs);
  return {
    stop() {
      clearInterval(t);
      tick();
      return max;
    },
    max: () => max,
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Established TCP connections whose local port is `port` (the server side of connections to a listener), from /proc/net. */
export function establishedTo(port: number): number {
  let n = 0;
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      const local = cols[1];
      if (local === undefined || cols[3] !== '01') continue;
      if (parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port) n++;
    }
  }
  return n;
}

/** Samples the max of `f()` every `everyMs` until stop() is called. */
export function sampleMax(f: () => number, everyMs = 50): { stop(): number } {
  let max = f();
  const t = setInterval(() => (max = Math.max(max, f())), everyMs);
  return {
    stop() {
      clearInterval(t);
      return Math.max(max, f());
    },
  };
}
