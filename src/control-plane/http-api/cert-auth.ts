// A proxy authenticated by its mesh certificate: the chain must lead to a current root, and the signed timestamp must be
// recent and signed by the leaf's key. The principal is the leaf's identity.

import type { IncomingHttpHeaders } from 'node:http2';
import { CERT_AUTH_MAX_SKEW_MS, CERT_CHAIN_HEADER, certAuthData } from '../../api/v1alpha1/cert-auth.js';
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
