// A frame-level HTTP/2 client for hostile-input tests: writes exactly the frames a test asks for (valid or not) over
// a raw TCP (h2c prior knowledge) or TLS (ALPN h2) socket, and reads every frame the server sends back, decoding
// response header blocks, so that tests can assert on GOAWAY / RST_STREAM codes and responses.

import net from 'node:net';
import tls from 'node:tls';
import { HpackDecoder, encodeHeaderBlock } from './hpack.js';

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const T = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const F = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;

export const E = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

export const S = { HEADER_TABLE_SIZE: 1, ENABLE_PUSH: 2, MAX_CONCURRENT_STREAMS: 3, INITIAL_WINDOW_SIZE: 4, MAX_FRAME_SIZE: 5, MAX_HEADER_LIST_SIZE: 6 } as const;

export function errorName(code: number): string {
  return Object.entries(E).find(([, v]) => v === code)?.[0] ?? `0x${code.toString(16)}`;
}

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/** One frame's bytes: 9-byte header and payload (the length field may be overridden to lie). */
export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0), lengthOverride?: number): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(lengthOverride ?? payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

export function settingsPayload(entries: ReadonlyArray<readonly [number, number]>): Buffer {
  const b = Buffer.alloc(entries.length * 6);
  entries.forEach(([id, v], i) => {
    b.writeUInt16BE(id, i * 6);
    b.writeUInt32BE(v, i * 6 + 2);
  });
  return b;
}

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

export function goawayPayload(lastStreamId: number, code: number, debug = ''): Buffer {
  return Buffer.concat([u32(lastStreamId), u32(code), Buffer.from(debug)]);
}

/** The request pseudo-headers plus extra fields, in order. */
export function requestHeaders(authority: string, path = '/hello', method = 'GET', extra: ReadonlyArray<readonly [string, string]> = []): Array<[string, string]> {
  return [[':method', method], [':scheme', 'http'], [':authority', authority], [':path', path], ...extra.map(([n, v]) => [n, v] as [string, string])];
}

export interface StreamResult {
  headers: Array<[string, string]> | null;
  status: number | null;
  data: Buffer;
  ended: boolean;
  reset: number | null;
}

export interface H2ConnectOptions {
  host: string;
  port: number;
  tls?: tls.ConnectionOptions;
  /** Answer the server's SETTINGS with an ACK (default true). */
  ackSettings?: boolean;
}

export class H2FrameClient {
  /** Frames received, at most `keep` of them (the oldest are dropped); `counts` counts all by type. */
  readonly frames: Frame[] = [];
  readonly counts = new Map<number, number>();
  readonly streams = new Map<number, StreamResult>();
  goaway: { lastStreamId: number; code: number; debug: string } | null = null;
  closed = false;
  error: string | null = null;
  bytesReceived = 0;
  private buf: Buffer = Buffer.alloc(0);
  private readonly decoder = new HpackDecoder();
  private headerBlock: { streamId: number; parts: Buffer[] } | null = null;
  private waiters = new Set<() => void>();
  private readonly keep = 20_000;
  readonly closedPromise: Promise<void>;

  private constructor(
    readonly socket: net.Socket,
    private readonly ackSettings: boolean,
  ) {
    this.closedPromise = new Promise((resolve) => {
      socket.on('close', () => {
        this.closed = true;
        this.notify();
        resolve();
      });
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.error = err.code ?? err.message;
    });
    socket.on('data', (d: Buffer) => this.onData(d));
  }

  /** Connects (TLS handshake done when it resolves), without sending anything. */
  static connect(o: H2ConnectOptions): Promise<H2FrameClient> {
    return new Promise((resolve, reject) => {
      const onReady = () => {
        s.off('error', reject);
        resolve(new H2FrameClient(s, o.ackSettings ?? true));
      };
      const s: net.Socket = o.tls
        ? tls.connect({ ALPNProtocols: ['h2'], ...o.tls, host: o.host, port: o.port }, onReady)
        : net.connect(o.port, o.host, onReady);
      s.once('error', reject);
    });
  }

  /** Connects, sends the preface and SETTINGS, and waits for the server's SETTINGS. */
  static async open(o: H2ConnectOptions, settings: ReadonlyArray<readonly [number, number]> = []): Promise<H2FrameClient> {
    const c = await H2FrameClient.connect(o);
    c.write(Buffer.concat([PREFACE, frame(T.SETTINGS, 0, 0, settingsPayload(settings))]));
    const got = await c.waitFor((f) => f.type === T.SETTINGS && (f.flags & F.ACK) === 0, 5000);
    if (got === null) {
      c.destroy();
      throw new Error(`no SETTINGS from the server (closed=${c.closed}, error=${c.error})`);
    }
    return c;
  }

  /** Writes bytes unless the socket is gone; returns false when the kernel buffer is full (wait for drain). */
  write(b: Buffer): boolean {
    if (this.closed || this.socket.destroyed || !this.socket.writable) return true;
    return this.socket.write(b, () => {});
  }

  send(type: number, flags: number, streamId: number, payload?: Buffer): boolean {
    return this.write(frame(type, flags, streamId, payload));
  }

  headers(streamId: number, list: ReadonlyArray<readonly [string, string]>, o: { endStream?: boolean; endHeaders?: boolean } = {}): boolean {
    const flags = (o.endStream ?? true ? F.END_STREAM : 0) | (o.endHeaders ?? true ? F.END_HEADERS : 0);
    return this.send(T.HEADERS, flags, streamId, encodeHeaderBlock(list));
  }

  continuation(streamId: number, block: Buffer, endHeaders: boolean): boolean {
    return this.send(T.CONTINUATION, endHeaders ? F.END_HEADERS : 0, streamId, block);
  }

  data(streamId: number, payload: Buffer, endStream: boolean): boolean {
    return this.send(T.DATA, endStream ? F.END_STREAM : 0, streamId, payload);
  }

  rst(streamId: number, code: number): boolean {
    return this.send(T.RST_STREAM, 0, streamId, u32(code));
  }

  ping(payload = Buffer.alloc(8), ack = false): boolean {
    return this.send(T.PING, ack ? F.ACK : 0, 0, payload);
  }

  settings(entries: ReadonlyArray<readonly [number, number]>, ack = false): boolean {
    return this.send(T.SETTINGS, ack ? F.ACK : 0, 0, ack ? Buffer.alloc(0) : settingsPayload(entries));
  }

  windowUpdate(streamId: number, increment: number): boolean {
    return this.send(T.WINDOW_UPDATE, 0, streamId, u32(increment));
  }

  sendGoaway(lastStreamId: number, code: number): boolean {
    return this.send(T.GOAWAY, 0, 0, goawayPayload(lastStreamId, code));
  }

  /** Resolves once the kernel buffer has room again (or the socket is gone). */
  drained(): Promise<void> {
    if (this.closed || !this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /**
   * Writes up to `count` items made by `make(i)` (batched `batch` per write, with backpressure) until the server
   * closes the connection, sends GOAWAY (when `stopOnGoaway`), or `deadlineMs` passes; returns how many were written.
   */
  async flood(count: number, make: (i: number) => Buffer, o: { batch?: number; deadlineMs?: number; stopOnGoaway?: boolean } = {}): Promise<number> {
    const batch = o.batch ?? 100;
    const deadline = Date.now() + (o.deadlineMs ?? 10_000);
    let i = 0;
    while (i < count && !this.closed && Date.now() < deadline && !(o.stopOnGoaway !== false && this.goaway !== null)) {
      const parts: Buffer[] = [];
      for (let k = 0; k < batch && i < count; k++, i++) parts.push(make(i));
      if (!this.write(Buffer.concat(parts))) await Promise.race([this.drained(), new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())))]);
      // Let the socket's read side run between batches.
      await new Promise((r) => setImmediate(r));
    }
    return i;
  }

  /** The first received frame (past or future) matching `pred`, or null on close or timeout. */
  waitFor(pred: (f: Frame) => boolean, timeoutMs = 5000): Promise<Frame | null> {
    const found = this.frames.find(pred);
    if (found) return Promise.resolve(found);
    let seen = this.frames.length;
    return new Promise((resolve) => {
      const check = () => {
        for (; seen < this.frames.length; seen++) {
          const f = this.frames[seen] as Frame;
          if (pred(f)) return finish(f);
        }
        seen = this.frames.length;
        if (this.closed) finish(null);
      };
      const finish = (f: Frame | null) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(f);
      };
      const timer = setTimeout(() => finish(null), timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /** Resolves true once the connection has closed, or false after `timeoutMs`. */
  waitClosed(timeoutMs = 5000): Promise<boolean> {
    if (this.closed) return Promise.resolve(true);
    return Promise.race([this.closedPromise.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(this.closed), timeoutMs))]);
  }

  /** Waits until the stream has a response (end of stream or reset), the connection ends, or the timeout passes. */
  async waitStream(streamId: number, timeoutMs = 5000): Promise<StreamResult | null> {
    await this.waitFor((f) => f.streamId === streamId && (f.type === T.RST_STREAM || (f.flags & F.END_STREAM) !== 0 && (f.type === T.DATA || f.type === T.HEADERS)) || f.type === T.GOAWAY, timeoutMs);
    return this.streams.get(streamId) ?? null;
  }

  count(type: number): number {
    return this.counts.get(type) ?? 0;
  }

  resets(): Frame[] {
    return this.frames.filter((f) => f.type === T.RST_STREAM);
  }

  destroy(): void {
    this.socket.destroy();
  }

  private stream(id: number): StreamResult {
    let s = this.streams.get(id);
    if (s === undefined) {
      s = { headers: null, status: null, data: Buffer.alloc(0), ended: false, reset: null };
      this.streams.set(id, s);
    }
    return s;
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  private onData(d: Buffer): void {
    this.bytesReceived += d.length;
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    let off = 0;
    while (this.buf.length - off >= 9) {
      const len = this.buf.readUIntBE(off, 3);
      if (this.buf.length - off < 9 + len) break;
      const f: Frame = { type: this.buf[off + 3] as number, flags: this.buf[off + 4] as number, streamId: this.buf.readUInt32BE(off + 5) & 0x7fffffff, payload: Buffer.from(this.buf.subarray(off + 9, off + 9 + len)) };
      off += 9 + len;
      this.onFrame(f);
    }
    this.buf = off === this.buf.length ? Buffer.alloc(0) : Buffer.from(this.buf.subarray(off));
    this.notify();
  }

  private onFrame(f: Frame): void {
    this.counts.set(f.type, (this.counts.get(f.type) ?? 0) + 1);
    if (this.frames.length >= this.keep) this.frames.splice(0, this.keep / 2);
    this.frames.push(f);
    switch (f.type) {
      case T.SETTINGS:
        if ((f.flags & F.ACK) === 0 && this.ackSettings) this.write(frame(T.SETTINGS, F.ACK, 0));
        break;
      case T.GOAWAY:
        this.goaway = { lastStreamId: f.payload.readUInt32BE(0) & 0x7fffffff, code: f.payload.readUInt32BE(4), debug: f.payload.subarray(8).toString('latin1') };
        break;
      case T.RST_STREAM:
        this.stream(f.streamId).reset = f.payload.readUInt32BE(0);
        break;
      case T.HEADERS:
      case T.CONTINUATION: {
        let block = f.payload;
        if (f.type === T.HEADERS) {
          let p = 0;
          let pad = 0;
          if (f.flags & F.PADDED) pad = block[p++] as number;
          if (f.flags & F.PRIORITY) p += 5;
          block = block.subarray(p, block.length - pad);
          this.headerBlock = { streamId: f.streamId, parts: [block] };
        } else if (this.headerBlock !== null) {
          this.headerBlock.parts.push(block);
        }
        if (f.flags & F.END_HEADERS && this.headerBlock !== null) {
          const list = this.decoder.decode(Buffer.concat(this.headerBlock.parts));
          const s = this.stream(this.headerBlock.streamId);
          if (s.headers === null) {
            s.headers = list;
            const st = list.find(([n]) => n === ':status');
            s.status = st ? Number(st[1]) : null;
          }
          this.headerBlock = null;
        }
        if (f.type === T.HEADERS && f.flags & F.END_STREAM) this.stream(f.streamId).ended = true;
        break;
      }
      case T.DATA: {
        const s = this.stream(f.streamId);
        let body = f.payload;
        if (f.flags & F.PADDED) body = body.subarray(1, body.length - (body[0] as number));
        if (s.data.length < 1 << 20) s.data = Buffer.concat([s.data, body]);
        if (f.flags & F.END_STREAM) s.ended = true;
        // Keep the peer's flow-control windows open for response bodies.
        if (f.payload.length > 0) {
          this.write(frame(T.WINDOW_UPDATE, 0, 0, u32(f.payload.length)));
          if ((f.flags & F.END_STREAM) === 0) this.write(frame(T.WINDOW_UPDATE, 0, f.streamId, u32(f.payload.length)));
        }
        break;
      }
      default:
        break;
    }
  }
}

/** The value of a header in a decoded list. */
export function headerValue(list: ReadonlyArray<readonly [string, string]> | null, name: string): string | undefined {
  return list?.find(([n]) => n === name)?.[1];
}
