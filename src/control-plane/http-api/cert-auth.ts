// Callers authenticated by a mesh certificate: a TLS client certificate (a proxy's workload certificate, or an admin
// certificate from `mycel ca admin-cert`), or, without TLS, a proxy's chain in a header with a recent timestamp signed
// by the leaf's key. The chain must lead to a current root; the principal is the leaf's identity.

import type { IncomingHttpHeaders, Http2ServerRequest } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { adminSpiffeId, CERT_AUTH_MAX_SKEW_MS, CERT_CHAIN_HEADER, certAuthData } from '../../api/v1alpha1/cert-auth.js';
import { parseSpiffeId } from '../../security/spiffe.js';
import type { Principal } from '../auth/tokens.js';
import { CaError } from '../ca/ca-certs.js';
import { MeshCa } from '../ca/mesh-ca.js';

export function certificatePrincipal(req: { headers: IncomingHttpHeaders }, authorization: string, ca: MeshCa | undefined, now = Date.now()): Principal | { reason: string } {
  if (ca === undefined) return { reason: 'the mesh CA is not loaded yet' };
  const m = /^Mycel-Cert (\d{1,16})\.([A-Za-z0-9+/=]{1,400})$/.exec(authorization.trim());
  const chainHeader = req.headers[CERT_CHAIN_HEADER];
  if (m === null || typeof chainHeader !== 'string') return { reason: `expected Authorization: Mycel-Cert <time>.<signature> and ${CERT_CHAIN_HEADER}` };
  const time = Number(m[1]);
  if (Math.abs(now - time) > CERT_AUTH_MAX_SKEW_MS) return { reason: 'the signed time is too far from the control plane\'s clock (check both clocks)' };
  try {
    const chain = ca.verifyChain(Buffer.from(chainHeader, 'base64').toString('utf8'), now);
    if (!MeshCa.proves(chain.leaf, certAuthData(time), m[2] as string)) return { reason: 'the signature was not made by the certificate\'s key' };
    return { role: 'proxy', namespace: chain.namespace, service: chain.service, via: 'certificate' };
  } catch (err) {
    if (err instanceof CaError) return { reason: err.message };
    throw err;
  }
}

const PEM_LINE = /.{1,64}/g;
const toPem = (der: Buffer): string => `-----BEGIN CERTIFICATE-----\n${der.toString('base64').match(PEM_LINE)!.join('\n')}\n-----END CERTIFICATE-----\n`;

/** Per TLS connection: the principal its client certificate proves (checked once per connection). */
const byConnection = new WeakMap<TLSSocket, { principal: Principal | undefined; until: number }>();

/** The TLS socket a request came on (HTTP/2 session or HTTP/1.1), or undefined in clear text. */
function tlsSocketOf(req: Http2ServerRequest): TLSSocket | undefined {
  const s = (req.stream?.session?.socket ?? req.socket) as TLSSocket | undefined;
  return s !== undefined && (s as { encrypted?: boolean }).encrypted === true ? s : undefined;
}

/**
 * The admin or proxy a TLS client certificate proves, or undefined when there is none (or it proves nothing: the
 * caller may still present a token). A workload certificate makes a proxy of its own service; the admin certificate
 * (its SPIFFE ID .../ns/mycel-system/sa/admin) makes an admin.
 */
export function clientCertificatePrincipal(req: Http2ServerRequest, ca: MeshCa | undefined, trustDomain: string, now = Date.now()): Principal | undefined {
  const socket = tlsSocketOf(req);
  if (socket === undefined || ca === undefined) return undefined;
  const cached = byConnection.get(socket);
  if (cached !== undefined && cached.until > now) return cached.principal;
  let principal: Principal | undefined;
  let until = now + 60_000;
  const peer = socket.getPeerCertificate(true);
  if (peer !== undefined && peer.raw !== undefined) {
    const issuer = peer.issuerCertificate;
    const chain = toPem(peer.raw) + (issuer !== undefined && issuer !== peer && issuer.raw !== undefined ? toPem(issuer.raw) : '');
    try {
      const v = ca.verifyChainOnly(chain, now);
      until = Math.min(until, Date.parse(v.leaf.validTo));
      if (v.uri === adminSpiffeId(trustDomain)) principal = { role: 'admin' };
      else {
        const id = v.uri === undefined ? undefined : parseSpiffeId(v.uri);
        if (id !== undefined && id.trustDomain === trustDomain) principal = { role: 'proxy', namespace: id.namespace, service: id.service, via: 'certificate' };
      }
    } catch (err) {
      if (!(err instanceof CaError)) throw err;
    }
  }
  byConnection.set(socket, { principal, until });
  return principal;
}
