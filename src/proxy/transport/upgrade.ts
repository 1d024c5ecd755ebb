// HTTP/1.1 Upgrade (WebSocket and friends) through the proxy: send the upgrade request on a dedicated connection,
// read the response head; on 101 pass it to the client and splice the two sockets, else relay the refusal and close.

import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { MycelError, toMycelError } from '../../core/errors.js';
import type { HeaderList } from '../stack/http-types.js';
import { H1ParseError, parseResponseHead } from './h1/response-parser.js';
import { splice, type SpliceResult } from './splice.js';

const MAX_HEAD = 64 * 1024;

export interface UpgradeTarget {
  authority: string;
  path: string;
  /** Forwardable request fields (hop-by-hop removed); Connection and Upgrade are added back here. */
  headers: HeaderList;
}

/**
 * Relays an upgrade request over `upstream` (not yet necessarily connected). `fail` is called when nothing was sent
 * to the client yet; after a relayed response the client socket is owned by this function.
 */
export function relayUpgrade(
  req: IncomingMessage,
  client: Socket,
  clientHead: Buffer,
  upstream: Socket,
  target: UpgradeTarget,
  idleMs: number,
  fail: (err: MycelError) => void,
  done: (status: number, r: SpliceResult | null) => void,
): void {
  let head = `${req.method ?? 'GET'} ${target.path} HTTP/1.1\r\nhost: ${target.authority}\r\nconnection: upgrade\r\nupgrade: ${req.headers.upgrade ?? ''}\r\n`;
  for (let i = 0; i < target.headers.length; i += 2) head += `${target.headers[i]}: ${target.headers[i + 1]}\r\n`;
  upstream.write(head + '\r\n', 'latin1');
  if (clientHead.length > 0) upstream.write(clientHead);

  let buf: Buffer = Buffer.alloc(0);
  let settled = false;
  const onError = (err: Error) => {
    if (settled) return;
    settled = true;
    upstream.destroy();
    fail(toMycelError(err, 'upstream-reset'));
  };
  const onClose = () => onError(new MycelError('upstream-reset', 'upstream closed before answering the upgrade'));
  const onData = (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    const end = buf.indexOf('\r\n\r\n');
    if (end === -1) {
      if (buf.length > MAX_HEAD) onError(new MycelError('upstream-protocol-error', 'upgrade response head too large'));
      return;
    }
    let parsed: ReturnType<typeof parseResponseHead>;
    try {
      parsed = parseResponseHead(buf.toString('latin1', 0, end), 'GET');
    } catch (err) {
      onError(new MycelError('upstream-protocol-error', err instanceof H1ParseError ? err.message : String(err)));
      return;
    }
    const status = parsed.status;
    settled = true;
    upstream.off('data', onData);
    upstream.off('error', onError);
    upstream.off('close', onClose);
    if (status === 101) {
      // The response head goes to the client byte for byte: the handshake fields (Sec-WebSocket-Accept) must survive.
      client.write(buf);
      splice(client, upstream, idleMs, (r) => done(status, r));
      return;
    }
    // A refusal (401, 404, 426 ...): relay it, then close both; the dedicated connection is not reused.
    const bodyStart = end + 4;
    const have = buf.length - bodyStart;
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    let closed = false;
    const closeBoth = () => {
      if (closed) return;
      closed = true;
      client.end();
      upstream.destroy();
      done(status, null);
    };
    if (parsed.framing === 'none' || (parsed.framing === 'length' && have >= parsed.contentLength)) {
      client.write(buf.subarray(0, bodyStart + (parsed.framing === 'length' ? parsed.contentLength : 0)));
      closeBoth();
      return;
    }
    client.write(buf);
    let remaining = parsed.framing === 'length' ? parsed.contentLength - have : Infinity;
    upstream.setTimeout(idleMs, closeBoth);
    upstream.on('data', (chunk: Buffer) => {
      const part = chunk.length > remaining ? chunk.subarray(0, remaining) : chunk;
      client.write(part);
      remaining -= part.length;
      if (remaining <= 0) closeBoth();
    });
    upstream.on('close', closeBoth);
  };
  upstream.on('data', onData);
  upstream.on('error', onError);
  upstream.on('close', onClose);
}
