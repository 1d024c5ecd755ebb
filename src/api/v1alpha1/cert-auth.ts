// How a proxy authenticates to the control plane with its mesh certificate without TLS client certificates (the
// --insecure-http API): the chain in a header and a signature by its key over a timestamp; and the mesh's own identities.

export const CERT_AUTH_SCHEME = 'Mycel-Cert';
/** Base64 of the PEM chain (leaf, then intermediate). */
export const CERT_CHAIN_HEADER = 'x-mycel-cert-chain';
/** How far the signed time may lie from the control plane's clock. */
export const CERT_AUTH_MAX_SKEW_MS = 5 * 60_000;

/** The bytes a proxy signs: `Authorization: Mycel-Cert <time>.<base64 signature>`. */
export function certAuthData(timeMs: number): Buffer {
  return Buffer.from(`mycel-stream:${timeMs}`);
}

/** The namespace of the mesh's own identities; no join token is ever issued for it. */
export const SYSTEM_NAMESPACE = 'mycel-system';

/** The control plane's SPIFFE ID (its API server certificate). */
export function controlPlaneSpiffeId(trustDomain: string): string {
  return `spiffe://${trustDomain}/ns/${SYSTEM_NAMESPACE}/svc/control-plane`;
}

/** An admin client certificate's SPIFFE ID (`mycel ca admin-cert`): not a workload, so no sidecar accepts it as a peer. */
export function adminSpiffeId(trustDomain: string): string {
  return `spiffe://${trustDomain}/ns/${SYSTEM_NAMESPACE}/sa/admin`;
}
