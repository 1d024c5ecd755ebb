// How a proxy authenticates to the control plane with its mesh certificate while the API is plain HTTP: the chain in
// a header, and a signature by its key over a timestamp, so that the join token is needed only for the first certificate.

export const CERT_AUTH_SCHEME = 'Mycel-Cert';
/** Base64 of the PEM chain (leaf, then intermediate). */
export const CERT_CHAIN_HEADER = 'x-mycel-cert-chain';
/** How far the signed time may lie from the control plane's clock. */
export const CERT_AUTH_MAX_SKEW_MS = 5 * 60_000;

/** The bytes a proxy signs: `Authorization: Mycel-Cert <time>.<base64 signature>`. */
export function certAuthData(timeMs: number): Buffer {
  return Buffer.from(`mycel-stream:${timeMs}`);
}
