// The destination a redirected connection was meant for, from the SO_ORIGINAL_DST addon (packages/original-dst):
// IPv4, or IPv6 where ip6tables redirected it.
// Loads the addon by its package name once the workspace is installed, else from the repository's packages/ folder.

import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

export interface OriginalDestination {
  address: string;
  port: number;
}

interface Addon {
  originalDst: ((fd: number) => OriginalDestination | null) | null;
  loadError: Error | null;
}

const require = createRequire(import.meta.url);
// dist/src/proxy/transparent/ when built, src/proxy/transparent/ under tsx.
const CANDIDATES = ['@mycel/original-dst', '../../../../packages/original-dst/index.js', '../../../packages/original-dst/index.js'];

let addon: Addon | null = null;

function load(): Addon {
  if (addon !== null) return addon;
  let firstError: Error | null = null;
  for (const c of CANDIDATES) {
    try {
      addon = require(c) as Addon;
      return addon;
    } catch (err) {
      firstError ??= err as Error;
    }
  }
  addon = { originalDst: null, loadError: new Error(`the SO_ORIGINAL_DST addon (@mycel/original-dst) is not installed: ${firstError?.message.split('\n')[0] ?? 'not found'}`) };
  return addon;
}

/** Null when transparent mode can work here; else why not (not Linux, addon not built). */
export function originalDstUnavailable(): Error | null {
  const a = load();
  return a.originalDst === null ? (a.loadError ?? new Error('the SO_ORIGINAL_DST addon is not available')) : null;
}

/**
 * Node keeps a net.Socket's file descriptor on its internal libuv handle (`_handle.fd`, Linux and macOS, not Windows).
 * It is not public API, so it is checked for shape and a missing one is an error, never a guess.
 */
function fdOf(socket: Socket): number {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle;
  const fd = handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('the socket has no file descriptor (closed already, or a Node version without _handle.fd)');
  return fd;
}

/**
 * Where the client meant to connect before iptables redirected it; null when it was not redirected (it connected to
 * the listener itself, as an explicit-mode client does). Throws when the addon is missing or getsockopt fails.
 */
export function originalDestination(socket: Socket): OriginalDestination | null {
  const get = load().originalDst;
  if (get === null) throw originalDstUnavailable()!;
  const dst = get(fdOf(socket));
  if (dst === null) return null;
  dst.address = plainAddress(dst.address);
  // conntrack knows every connection, redirected or not: an unchanged destination is the listener's own address.
  if (dst.port === socket.localPort && dst.address === plainAddress(socket.localAddress ?? '')) return null;
  return dst;
}

/**
 * One spelling per address: an IPv4 address seen through a dual-stack socket (::ffff:a.b.c.d) as plain IPv4, an
 * IPv6 one without its zone (fe80::1%eth0). The addon gives IPv6 in its shortest form already (inet_ntop).
 */
export function plainAddress(address: string): string {
  if (address.startsWith('::ffff:') && address.includes('.')) return address.slice(7);
  const zone = address.indexOf('%');
  return zone === -1 ? address : address.slice(0, zone);
}

/** `address:port`, with an IPv6 address in brackets (`[fd00::1]:80`) so that the port stays readable. */
export function hostPort(d: OriginalDestination): string {
  return d.address.includes(':') ? `[${d.address}]:${d.port}` : `${d.address}:${d.port}`;
}
