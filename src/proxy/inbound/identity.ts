// Inbound identity: tells the app who is calling. The verified peer SPIFFE ID goes into x-mycel-peer-identity, a
// field only the sidecar sets (anything arriving with that name is dropped, and so is x-forwarded-client-cert, which
// apps behind Envoy trust for the same purpose), and the mesh-internal fields are removed.

import type { HttpExchange } from '../stack/exchange.js';
import { ORIG_PROTO_HEADER, type HeaderList } from '../stack/http-types.js';
import type { HttpLayer, HttpService } from '../stack/service.js';

export const PEER_IDENTITY_HEADER = 'x-mycel-peer-identity';
/** Envoy's client-certificate field: a caller could forge it, and only the sidecar knows the verified peer. */
export const XFCC_HEADER = 'x-forwarded-client-cert';

class PeerIdentity implements HttpService {
  constructor(private readonly inner: HttpService) {}

  call(ex: HttpExchange): void {
    const h = ex.headers;
    let out: HeaderList | null = null;
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i] as string;
      if (name === PEER_IDENTITY_HEADER || name === ORIG_PROTO_HEADER || name === XFCC_HEADER) {
        if (name === ORIG_PROTO_HEADER && h[i + 1] === 'http/1.1') ex.originalProtocol = 'http/1.1';
        out ??= h.slice(0, i);
        continue;
      }
      if (out !== null) out.push(name, h[i + 1] as string);
    }
    if (out !== null) ex.headers = out;
    if (ex.peerIdentity !== null) ex.headers.push(PEER_IDENTITY_HEADER, ex.peerIdentity);
    this.inner.call(ex);
  }
}

export const peerIdentityLayer = (): HttpLayer => (inner) => new PeerIdentity(inner);
