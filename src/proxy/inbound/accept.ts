// Inbound accept: the mTLS listener other sidecars reach. TLS 1.3 only with a client certificate from the trust
// bundle; the peer's SPIFFE ID must be in our trust domain; ALPN picks HTTP/2, HTTP/1.1 or an opaque TCP tunnel.

import tls, { type TLSSocket } from 'node:tls';
import type { Logger } from '../../core/log.js';
import { parseSpiffeId, spiffeIdFromPeerCertificate } from '../../security/spiffe.js';
import type { HttpFrontend } from '../transport/http-frontend.js';
import { TLS_SERVER_BASE, type IdentityStore } from '../transport/tls/identity.js';
import { ALPN_H1, ALPN_H2, ALPN_TCP, INBOUND_ALPN } from '../transport/tls/peer-connect.js';

const kPeer = Symbol('mycel.peerIdentity');
const kPeerService = Symbol('mycel.peerService');
type Tagged = { [kPeer]?: string; [kPeerService]?: string };

/** The verified SPIFFE ID of the peer on an inbound connection. */
export function peerIdentityOf(socket: object): string | null {
  return (socket as Tagged)[kPeer] ?? null;
}

/** The service name in the peer's SPIFFE ID (worked out once per connection). */
export function peerServiceOf(socket: object): string | null {
  return (socket as Tagged)[kPeerService] ?? null;
}

export interface InboundAcceptOptions {
  identity: IdentityStore;
  frontend: HttpFrontend;
  trustDomain: () => string;
  handshakeTimeoutMs: number;
  maxConnections: number;
  log: Logger;
  onTcp(socket: TLSSocket): void;
  onHandshakeError?(reason: string): void;
}

export function createInboundServer(o: InboundAcceptOptions): tls.Server {
  const server = tls.createServer({
    ...o.identity.current.serverOptions,
    ...TLS_SERVER_BASE,
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: INBOUND_ALPN,
    handshakeTimeout: o.handshakeTimeoutMs,
    allowHalfOpen: true,
    noDelay: true,
  });
  server.maxConnections = o.maxConnections;
  // New handshakes use the new certificate; established connections keep theirs.
  o.identity.on('change', (next) => server.setSecureContext({ ...next.serverOptions, ...TLS_SERVER_BASE }));

  server.on('secureConnection', (socket: TLSSocket) => {
    socket.on('error', () => {
      /* reported by whichever layer owns the socket */
    });
    if (o.frontend.isDraining) {
      socket.destroy();
      return;
    }
    const id = spiffeIdFromPeerCertificate(socket.getPeerCertificate());
    const parsed = id === undefined ? undefined : parseSpiffeId(id);
    if (parsed === undefined || parsed.trustDomain !== o.trustDomain()) {
      o.log.warn('refused a peer without a SPIFFE ID of this trust domain', { peer: id ?? null, remote: socket.remoteAddress });
      o.onHandshakeError?.('peer-identity');
      socket.destroy();
      return;
    }
    (socket as TLSSocket & Tagged)[kPeer] = id as string;
    (socket as TLSSocket & Tagged)[kPeerService] = parsed.service;
    switch (socket.alpnProtocol) {
      case ALPN_H2:
        o.frontend.acceptH2(socket);
        break;
      case ALPN_TCP:
        o.onTcp(socket);
        break;
      case ALPN_H1:
      default:
        // No ALPN (a plain TLS client such as curl without it) is HTTP/1.1.
        o.frontend.acceptH1(socket);
        break;
    }
  });
  server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
    o.log.debug('inbound TLS handshake failed', { reason: err.message, code: err.code });
    o.onHandshakeError?.(err.code ?? 'handshake');
    // Node reports a stalled handshake (ERR_TLS_HANDSHAKE_TIMEOUT) but leaves the connection open.
    socket.destroy();
  });
  return server;
}
