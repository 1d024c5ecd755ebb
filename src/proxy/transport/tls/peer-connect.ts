// Opens mTLS connections to another sidecar's inbound listener: TLS 1.3, our workload certificate, the trust bundle,
// one ALPN protocol, and the peer's SPIFFE ID checked against the destination service's identity.

import tls, { type PeerCertificate, type TLSSocket } from 'node:tls';
import { MycelError } from '../../../core/errors.js';
import { spiffeIdFromPeerCertificate } from '../../../security/spiffe.js';
import type { IdentityStore } from './identity.js';

/** ALPN protocols between sidecars: HTTP/1.1, HTTP/2, and an opaque TCP tunnel to the app's port. */
export const ALPN_H1 = 'http/1.1';
export const ALPN_H2 = 'h2';
export const ALPN_TCP = 'mycel-tcp';
export const INBOUND_ALPN = [ALPN_H2, ALPN_H1, ALPN_TCP];

export function connectPeer(identity: IdentityStore, host: string, port: number, expectedId: string, alpn: string, serverName: string): TLSSocket {
  const socket = tls.connect({
    host,
    port,
    secureContext: identity.current.clientContext,
    minVersion: 'TLSv1.3',
    ALPNProtocols: [alpn],
    servername: serverName,
    rejectUnauthorized: true,
    checkServerIdentity(_host: string, cert: PeerCertificate): Error | undefined {
      const got = spiffeIdFromPeerCertificate(cert);
      if (got === expectedId) return undefined;
      return new MycelError('peer-identity-mismatch', `expected ${expectedId}, the peer at ${host}:${port} is ${got ?? 'without a SPIFFE ID'}`);
    },
  });
  // Small frames (a request head, an HTTP/2 HEADERS frame) must leave at once, not wait for Nagle.
  socket.setNoDelay(true);
  socket.once('secureConnect', () => {
    if (socket.alpnProtocol !== alpn) {
      socket.destroy(new MycelError('tls-handshake-failed', `the peer at ${host}:${port} did not agree to ALPN ${alpn} (got ${socket.alpnProtocol || 'none'})`));
    }
  });
  return socket;
}
