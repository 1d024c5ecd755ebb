// Keeps one HTTP client per endpoint and transport kind (pooled HTTP/1.1 or one HTTP/2 session), so that connections
// live across config changes; clients of endpoints that left the config are closed gracefully.

import net from 'node:net';
import type { EndpointTarget } from '../config/plan.js';
import type { HttpClient } from '../stack/http-types.js';
import { H1Pool } from './h1/pool.js';
import { H2Client } from './h2/client.js';
import type { ConnectionSlots } from './connection-slots.js';
import type { IdentityStore } from './tls/identity.js';
import { ALPN_H1, ALPN_H2, connectPeer } from './tls/peer-connect.js';

export type ClientKind = 'h1-mtls' | 'h2-mtls' | 'h1-plain' | 'h2-plain';

export interface ClientCacheOptions {
  identity: IdentityStore | null;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  /** Idle pooled connections close after this (keep below the server's keep-alive timeout; Node's default is 5 s). */
  poolIdleMs: number;
  /** HTTP/2 keepalive to peer sidecars (see H2ClientOptions.keepalive), and who hears of a dead session. */
  keepalive?: () => { intervalMs: number; timeoutMs: number };
  onKeepaliveTimeout?: (url: string, timeoutMs: number) => void;
}

export class ClientCache {
  private readonly clients = new Map<string, HttpClient>();

  /** The identity store is read at each connect, so a rotated certificate needs nothing here. */
  constructor(private readonly options: ClientCacheOptions) {}

  /**
   * `identity` is the SPIFFE ID the endpoint must present (mTLS kinds only); `serverName` goes into SNI; `slots` are
   * the destination's connection limits, bound to the client when it is created.
   */
  get(kind: ClientKind, ep: EndpointTarget, identity: string, serverName: string, slots?: ConnectionSlots): HttpClient {
    const key = kind + '|' + ep.key + '|' + identity;
    let c = this.clients.get(key);
    if (c === undefined) {
      c = this.create(kind, ep, identity, serverName, slots);
      this.clients.set(key, c);
    }
    return c;
  }

  /** Closes clients whose endpoint is not in `keep` (endpoint keys). */
  retain(keep: ReadonlySet<string>): void {
    for (const [key, client] of this.clients) {
      const epKey = key.split('|')[1] as string;
      if (!keep.has(epKey)) {
        client.close();
        this.clients.delete(key);
      }
    }
  }

  closeAll(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  private create(kind: ClientKind, ep: EndpointTarget, identity: string, serverName: string, slots: ConnectionSlots | undefined): HttpClient {
    const o = this.options;
    const limits = slots === undefined ? {} : { slots };
    const ids = o.identity;
    switch (kind) {
      case 'h1-mtls':
        if (ids === null) throw new Error('mTLS needs a workload identity');
        return new H1Pool({
          connect: () => ({ socket: connectPeer(ids, ep.address, ep.port, identity, ALPN_H1, serverName), event: 'secureConnect' }),
          connectTimeoutMs: o.connectTimeoutMs,
          idleTimeoutMs: o.idleTimeoutMs,
          poolIdleMs: o.poolIdleMs,
          ...limits,
        });
      case 'h1-plain':
        return new H1Pool({
          connect: () => ({ socket: net.connect({ host: ep.address, port: ep.port, noDelay: true }), event: 'connect' }),
          connectTimeoutMs: o.connectTimeoutMs,
          idleTimeoutMs: o.idleTimeoutMs,
          poolIdleMs: o.poolIdleMs,
          ...limits,
        });
      case 'h2-mtls':
        if (ids === null) throw new Error('mTLS needs a workload identity');
        return new H2Client({
          url: `https://${hostForUrl(ep.address)}:${ep.port}`,
          createConnection: () => connectPeer(ids, ep.address, ep.port, identity, ALPN_H2, serverName),
          connectTimeoutMs: o.connectTimeoutMs,
          idleTimeoutMs: o.idleTimeoutMs,
          ...(o.keepalive !== undefined ? { keepalive: o.keepalive } : {}),
          ...(o.onKeepaliveTimeout !== undefined ? { onKeepaliveTimeout: o.onKeepaliveTimeout } : {}),
          ...limits,
        });
      case 'h2-plain':
        return new H2Client({
          url: `http://${hostForUrl(ep.address)}:${ep.port}`,
          createConnection: () => net.connect({ host: ep.address, port: ep.port, noDelay: true }),
          connectTimeoutMs: o.connectTimeoutMs,
          idleTimeoutMs: o.idleTimeoutMs,
          ...limits,
        });
    }
  }
}

function hostForUrl(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}
