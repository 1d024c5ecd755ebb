// Inbound accept: the listener other sidecars reach. A TLS ClientHello goes to mTLS: TLS 1.3 only with a client
// certificate from the trust bundle, the peer's SPIFFE ID in our trust domain, ALPN picking HTTP/2, HTTP/1.1 or an opaque
// TCP tunnel. Anything else is plain text: refused under STRICT, served as HTTP/1.1 or h2c under PERMISSIVE.

import net, { type Socket } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import type { MtlsMode } from '../config/plan.js';
import { detectProtocol } from '../outbound/detect.js';
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
  /** The PeerAuthentication mode now (it may change with the config). */
  mode(): MtlsMode;
  onTcp(socket: TLSSocket): void;
  onHandshakeError?(reason: string): void;
  /** A connection was admitted: over mTLS, or in plain text (PERMISSIVE). */
  onAccepted?(mode: 'mtls' | 'plaintext'): void;
}

/** The first byte of a TLS handshake record. */
const TLS_HANDSHAKE = 0x16;

/** The listening server: sniffs the first bytes of each connection and hands it to mTLS or (PERMISSIVE) plain HTTP. */
export function createInboundServer(o: InboundAcceptOptions): net.Server {
  const mtls = createMtlsServer(o);
  const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => sniff(o, mtls, socket));
  server.maxConnections = o.maxConnections;
  return server;
}

/** Waits (up to the handshake timeout) for the client's first bytes and decides by the first one. */
function sniff(o: InboundAcceptOptions, mtls: tls.Server, socket: Socket): void {
  socket.on('error', () => {
    /* reported by whichever layer owns the socket */
  });
  const timer =
    o.handshakeTimeoutMs > 0
      ? setTimeout(() => {
          o.onHandshakeError?.('ERR_TLS_HANDSHAKE_TIMEOUT');
          socket.destroy();
        }, o.handshakeTimeoutMs)
      : null;
  const gone = () => socket.destroy(); // FIN before a single byte
  const closed = () => {
    if (timer !== null) clearTimeout(timer);
  };
  socket.once('close', closed);
  socket.once('end', gone);
  socket.once('data', (chunk: Buffer) => {
    if (timer !== null) clearTimeout(timer);
    socket.off('end', gone);
    socket.off('close', closed);
    socket.pause();
    socket.unshift(chunk);
    if (chunk[0] === TLS_HANDSHAKE) {
      // The TLS socket takes over the bytes already read (Node feeds a socket's buffered data to the handshake).
      mtls.emit('connection', socket);
      return;
    }
    if (o.mode() !== 'PERMISSIVE') {
      o.log.debug('refused a plain-text connection (mTLS mode STRICT)', { remote: socket.remoteAddress });
      o.onHandshakeError?.('plaintext');
      socket.destroy();
      return;
    }
    detectProtocol(socket, o.handshakeTimeoutMs, 'tcp', (p) => acceptPlain(o, socket, p));
    socket.resume(); // detection reads the bytes put back above, and what follows
  });
}

/** PERMISSIVE plain text: HTTP/1.1 or h2c prior knowledge; no identity, so no x-mycel-peer-identity. Raw TCP is refused. */
function acceptPlain(o: InboundAcceptOptions, socket: Socket, p: 'h1' | 'h2' | 'tcp'): void {
  if (o.frontend.isDraining || p === 'tcp') {
    if (p === 'tcp') o.onHandshakeError?.('plaintext-tcp');
    socket.destroy();
    return;
  }
  o.onAccepted?.('plaintext');
  if (p === 'h2') o.frontend.acceptH2(socket);
  else o.frontend.acceptH1(socket);
}

function createMtlsServer(o: InboundAcceptOptions): tls.Server {
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
    o.onAccepted?.('mtls');
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
