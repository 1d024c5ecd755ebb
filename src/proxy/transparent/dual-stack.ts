// Transparent mode's listeners for both address families. An IPv6 REDIRECT delivers the app's outbound connections
// to ::1 and inbound ones to the interface's own IPv6 address, which IPv4-only listeners would never see.

import type { Server } from 'node:net';
import { isIPv4 } from 'node:net';
import type { ListenAddress } from '../../core/listen-address.js';
import { listen } from '../outbound/accept.js';

/**
 * Where the outbound listener also listens so that redirected connections of the other family reach it: ::1 next to
 * an IPv4 address, 127.0.0.1 next to ::1; null otherwise ('::' takes both already). Always a loopback address: a
 * transparent listener on an address other hosts reach would be an open proxy.
 */
export function loopbackCompanion(host: string): string | null {
  if (host === '::1') return '127.0.0.1';
  return isIPv4(host) ? '::1' : null;
}

/** Listening failed because this family is off here (IPv6 disabled, or not in the kernel): the companion is not needed. */
function familyUnavailable(err: unknown): boolean {
  const code = ((err as Error).cause as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT';
}

/** Listens on the companion loopback address; null when that family is off here (and the server is not listening). */
export async function listenCompanion(server: Server, addr: ListenAddress): Promise<ListenAddress | null> {
  try {
    return await listen(server, addr);
  } catch (err) {
    if (familyUnavailable(err)) return null;
    throw err;
  }
}

/**
 * The inbound listener in transparent mode: the IPv4 wildcard becomes the dual-stack one ('::', IPv4 arriving as
 * ::ffff:a.b.c.d), so that redirected IPv6 connections are served too; without IPv6 in the kernel, 0.0.0.0 as asked.
 */
export async function listenInboundDualStack(server: Server, addr: ListenAddress): Promise<ListenAddress> {
  if (addr.host !== '0.0.0.0') return listen(server, addr);
  try {
    return await listen(server, { host: '::', port: addr.port });
  } catch (err) {
    if (familyUnavailable(err)) return listen(server, addr);
    throw err;
  }
}
