// Protocol detection on a fresh client connection: the HTTP/2 connection preface, an HTTP/1.x request line, or else
// opaque TCP. Bounded in bytes and time, so a server-speaks-first protocol is never stalled for long.

import type { Socket } from 'node:net';

export type DetectedProtocol = 'h1' | 'h2' | 'tcp';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
/** An HTTP/1 request line starts with a method token followed by a space. */
const METHOD = /^[A-Z][A-Z_-]{0,19} /;

/** What the first bytes say; 'more' when they are a prefix of something still undecided. */
export function classify(buf: Buffer): DetectedProtocol | 'more' {
  const n = Math.min(buf.length, PREFACE.length);
  if (buf.compare(PREFACE, 0, n, 0, n) === 0) return n === PREFACE.length ? 'h2' : 'more';
  const head = buf.toString('latin1', 0, Math.min(buf.length, 24));
  if (METHOD.test(head)) return 'h1';
  if (/^[A-Z][A-Z_-]{0,19}$/.test(head) && buf.length < 21) return 'more';
  return 'tcp';
}

/**
 * Reads the first bytes of `socket` and calls `done` with the protocol; the bytes read are put back (unshift) so
 * that the next consumer sees the stream from its start. Without client bytes within `timeoutMs` the answer is
 * `onTimeout` ('tcp' for a port of unknown protocol, where the server may speak first).
 */
export function detectProtocol(socket: Socket, timeoutMs: number, onTimeout: DetectedProtocol, done: (p: DetectedProtocol) => void): void {
  let buf: Buffer | null = null;
  let timer: NodeJS.Timeout | null = null;
  const finish = (p: DetectedProtocol) => {
    if (timer !== null) clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onEnd);
    socket.pause();
    if (buf !== null) socket.unshift(buf);
    done(p);
  };
  const onData = (chunk: Buffer) => {
    buf = buf === null ? chunk : Buffer.concat([buf, chunk]);
    const c = classify(buf);
    if (c !== 'more') finish(c);
  };
  const onEnd = () => finish(buf === null ? onTimeout : 'tcp');
  socket.on('data', onData);
  socket.on('end', onEnd);
  // A socket paused by an earlier look at its first bytes (transparent mode's Host sniffing) must flow again.
  socket.resume();
  if (timeoutMs > 0) timer = setTimeout(() => finish(buf === null ? onTimeout : 'tcp'), timeoutMs);
}
