// Loopback ports for the local mesh: a free one for an app, and waiting (bounded) until an app listens on its port.

import { createConnection, createServer } from 'node:net';

/** A port nothing listens on right now (bound to 127.0.0.1 and released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a !== null ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

/** Whether something accepts connections on 127.0.0.1:port. */
export function isListening(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection({ host, port });
    c.setTimeout(1000, () => c.destroy());
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
    c.once('close', () => resolve(false));
  });
}

/** Whether this process could listen on host:port now (nothing else holds it). */
export function canListen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

/** Polls until 127.0.0.1:port accepts connections; false after timeoutMs or once `gaveUp()` says so (the app exited). */
export async function waitForListening(port: number, timeoutMs: number, gaveUp: () => boolean = () => false): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !gaveUp()) {
    if (await isListening(port)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}
