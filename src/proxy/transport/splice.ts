// Joins two sockets into a tunnel (TCP, CONNECT, WebSocket after 101): bytes both ways with backpressure, half-close
// passed on, an idle timeout, and both sides torn down together when either breaks.

import type { Socket } from 'node:net';

export interface SpliceResult {
  /** Bytes that went from a to b, and from b to a. */
  aToB: number;
  bToA: number;
  /** Why the tunnel ended: 'closed' when both sides finished cleanly. */
  reason: 'closed' | 'error' | 'idle-timeout';
  error?: Error;
}

export function splice(a: Socket, b: Socket, idleMs: number, done?: (r: SpliceResult) => void): void {
  let finished = false;
  let closedSides = 0;
  const result: SpliceResult = { aToB: 0, bToA: 0, reason: 'closed' };
  // Bytes already read into a socket's buffer (early client bytes while the upstream connected, an unshifted head)
  // still go through the tunnel: they count.
  const aRead0 = a.bytesRead - a.readableLength;
  const bRead0 = b.bytesRead - b.readableLength;
  const finish = () => {
    if (finished) return;
    finished = true;
    result.aToB = a.bytesRead - aRead0;
    result.bToA = b.bytesRead - bRead0;
    done?.(result);
  };
  const fail = (reason: SpliceResult['reason'], err?: Error) => {
    if (result.reason === 'closed') {
      result.reason = reason;
      if (err) result.error = err;
    }
    a.destroy();
    b.destroy();
  };
  const onClose = () => {
    if (++closedSides === 2) {
      finish();
      return;
    }
    // One side is closed in both directions: whatever the other side still sends has nowhere to go, so flush what
    // is queued to it and close it completely (a half-close here would leave the client hanging on its own half).
    if (a.destroyed && !b.destroyed) b.destroySoon();
    if (b.destroyed && !a.destroyed) a.destroySoon();
  };
  a.on('error', (err) => fail('error', err));
  b.on('error', (err) => fail('error', err));
  a.on('close', onClose);
  b.on('close', onClose);
  if (idleMs > 0) {
    const onIdle = () => fail('idle-timeout');
    a.setTimeout(idleMs, onIdle);
    b.setTimeout(idleMs, onIdle);
  }
  a.pipe(b);
  b.pipe(a);
}
