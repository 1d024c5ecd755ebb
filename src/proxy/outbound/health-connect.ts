// How a caller's active health checks reach an endpoint: through the mesh, as an mTLS connection to the endpoint's
// sidecar with the check's ALPN (h2 for gRPC, http/1.1 for HTTP, mycel-tcp for TCP), so the check crosses the same
// path as real requests; plain TCP for a service outside the mesh.

import type { Socket } from 'node:net';
import type { EndpointTarget } from '../config/targets.js';
import { plainConnect, type HealthConnect, type HealthProtocol } from '../layers/health/index.js';
import type { IdentityStore } from '../transport/tls/identity.js';
import { ALPN_H1, ALPN_H2, ALPN_TCP, connectPeer } from '../transport/tls/peer-connect.js';
import type { DestinationRuntime } from './destination-runtime.js';

const ALPN: Record<HealthProtocol, string> = { 'h2': ALPN_H2, 'http/1.1': ALPN_H1, 'tcp': ALPN_TCP };

/** A connector for the checks of `rt`'s endpoints; `handshakeTimeoutMs` bounds a peer that never finishes TLS. */
export function meshHealthConnect(identity: IdentityStore, rt: DestinationRuntime, handshakeTimeoutMs: number): HealthConnect<EndpointTarget> {
  return (ep, protocol) => {
    const svc = rt.service;
    if (svc.external) return plainConnect(ep);
    return new Promise<Socket>((resolve, reject) => {
      const socket = connectPeer(identity, ep.address, ep.port, svc.identity, ALPN[protocol], `${svc.name}.${svc.namespace}.svc`);
      socket.setTimeout(handshakeTimeoutMs, () => socket.destroy(new Error(`no TLS handshake within ${handshakeTimeoutMs} ms`)));
      socket.once('error', reject);
      socket.once('secureConnect', () => {
        // connectPeer has already destroyed a socket whose peer refused the ALPN; its error follows.
        if (socket.destroyed) return;
        socket.setTimeout(0);
        socket.off('error', reject);
        resolve(socket);
      });
    });
  };
}
