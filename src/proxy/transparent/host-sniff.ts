// Reads the Host header of an HTTP/1.x request from the first bytes of a connection, without consuming them (they
// are put back for the HTTP server). Transparent mode uses it to ask the control plane about a name it has not seen.

import type { Socket } from 'node:net';

/** Most request heads fit; a Host field past this is not looked for. */
const MAX_HEAD = 16 * 1024;
const HOST_LINE = /\r\nhost:[ \t]*([^\r\n]*?)[ \t]*\r\n/i;
const REQUEST_LINE = /^[A-Z][A-Z_-]{0,19} \S+ HTTP\/1\.[01]\r\n/;

/** The host part (no port) of a request head's Host field; null when it is not an HTTP/1 head with one. */
export function hostOfHead(head: string): string | null {
  if (!REQUEST_LINE.test(head)) return null;
  const end = head.indexOf('\r\n\r\n');
  const m = HOST_LINE.exec(end === -1 ? head : head.slice(0, end + 2));
  if (m === null || m[1] === '') return null;
  const value = m[1]!;
  if (value.startsWith('[')) return value.slice(1, Math.max(1, value.indexOf(']')));
  const colon = value.indexOf(':');
  return (colon === -1 ? value : value.slice(0, colon)).toLowerCase();
}

/**
 * Waits for the request head (or MAX_HEAD bytes, the client's end, or `timeoutMs`) and calls `done` with its Host,
 * or null. The socket is left paused with every byte read put back.
 */
export function sniffHost(socket: Socket, timeoutMs: number, done: (host: string | null) => void): void {
  let buf: Buffer | null = null;
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', finish);
    socket.pause();
    if (buf !== null) socket.unshift(buf);
    done(buf === null ? null : hostOfHead(buf.toString('latin1', 0, Math.min(buf.length, MAX_HEAD))));
  };
  const onData = (chunk: Buffer) => {
    buf = buf === null ? chunk : Buffer.concat([buf, chunk]);
    if (buf.length >= MAX_HEAD || buf.includes('\r\n\r\n') || !REQUEST_LINE.test(buf.toString('latin1', 0, Math.min(buf.length, 64))) && buf.includes('\r\n')) finish();
  };
  const timer = setTimeout(finish, timeoutMs);
  socket.on('data', onData);
  socket.once('end', finish);
  socket.resume();
}
