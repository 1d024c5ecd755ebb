// SPIFFE workload identities of the mesh: spiffe://<trust-domain>/ns/<namespace>/svc/<service>.
// Builds and strictly parses them, and reads the one identity an X.509 SVID carries in its URI SAN.

import type { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, PeerCertificate } from 'node:tls';

export interface SpiffeIdentity {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly service: string;
}

// Limits from the SPIFFE ID standard (section 2.3): a URI of at most 2048 bytes, a trust domain of at most 255.
const MAX_ID_LENGTH = 2048;
const MAX_TRUST_DOMAIN_LENGTH = 255;
const DNS_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const SEGMENT = /^[a-z0-9.-]+$/;
// Every character outside [a-z0-9.-/:] (such as ?, #, @, %, upper case) makes the whole match fail.
const SHAPE = /^spiffe:\/\/([a-z0-9.-]+)\/ns\/([a-z0-9.-]+)\/svc\/([a-z0-9.-]+)$/;

/** Why a trust domain is not acceptable, or undefined when it is. */
export function trustDomainProblem(trustDomain: string): string | undefined {
  if (trustDomain.length === 0) return 'the trust domain is empty';
  if (trustDomain.length > MAX_TRUST_DOMAIN_LENGTH) return `the trust domain is longer than ${MAX_TRUST_DOMAIN_LENGTH} characters`;
  if (!DNS_NAME.test(trustDomain)) {
    return `trust domain "${trustDomain}" is not a lower-case DNS name (letters a-z, digits, "-" and "." between labels, such as mycel.local)`;
  }
  return undefined;
}

/** Why a namespace or service name cannot be a path segment of a SPIFFE ID, or undefined when it can. */
export function segmentProblem(what: 'namespace' | 'service', value: string): string | undefined {
  if (value.length === 0) return `the ${what} name is empty`;
  if (!SEGMENT.test(value)) return `${what} "${value}" may contain only lower-case letters a-z, digits, "-" and "."`;
  // URI normalisation removes "." and "..", so two different IDs could compare equal.
  if (value === '.' || value === '..') return `${what} "${value}" is not a name`;
  return undefined;
}

/** The SPIFFE ID of a service; throws a RangeError when a part cannot appear in one. */
export function spiffeId(trustDomain: string, namespace: string, service: string): string {
  const problem = trustDomainProblem(trustDomain) ?? segmentProblem('namespace', namespace) ?? segmentProblem('service', service);
  if (problem !== undefined) throw new RangeError(`cannot build a SPIFFE ID: ${problem}`);
  const id = `spiffe://${trustDomain}/ns/${namespace}/svc/${service}`;
  if (id.length > MAX_ID_LENGTH) throw new RangeError(`cannot build a SPIFFE ID: it would be longer than ${MAX_ID_LENGTH} characters`);
  return id;
}

/** Parses a mesh SPIFFE ID; anything not exactly of the mesh's shape (no query, fragment, port, userinfo, escapes) is undefined. */
export function parseSpiffeId(uri: string): SpiffeIdentity | undefined {
  if (uri.length > MAX_ID_LENGTH) return undefined;
  const m = SHAPE.exec(uri);
  if (!m) return undefined;
  const [, trustDomain = '', namespace = '', service = ''] = m;
  if (trustDomainProblem(trustDomain) !== undefined) return undefined;
  if (segmentProblem('namespace', namespace) !== undefined || segmentProblem('service', service) !== undefined) return undefined;
  return { trustDomain, namespace, service };
}

/**
 * Splits Node's SAN text ("DNS:a, URI:spiffe://x, IP Address:1.2.3.4") into entries. Node writes a value that
 * contains a separator or other special characters as a JSON string, so a plain split on ", " could be fooled.
 * Returns undefined when the text is not in that format, so that callers fail closed.
 */
export function parseSubjectAltNames(text: string): Array<{ type: string; value: string }> | undefined {
  const names: Array<{ type: string; value: string }> = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) return undefined;
    const type = text.slice(i, colon);
    let value: string;
    if (text[colon + 1] === '"') {
      let j = colon + 2;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (j >= text.length) return undefined;
      try {
        value = JSON.parse(text.slice(colon + 1, j + 1)) as string;
      } catch {
        return undefined;
      }
      i = j + 1;
    } else {
      const end = text.indexOf(', ', colon + 1);
      i = end < 0 ? text.length : end;
      value = text.slice(colon + 1, i);
    }
    names.push({ type, value });
    if (i === text.length) break;
    if (!text.startsWith(', ', i)) return undefined;
    i += 2;
  }
  return names;
}

function identityFromSanText(text: string | undefined): string | undefined {
  if (text === undefined || text === '') return undefined;
  const names = parseSubjectAltNames(text);
  if (names === undefined) return undefined;
  let uri: string | undefined;
  for (const n of names) {
    if (n.type !== 'URI') continue;
    // An X.509 SVID carries exactly one URI SAN; with two there is no single identity to authorize.
    if (uri !== undefined) return undefined;
    uri = n.value;
  }
  return uri !== undefined && parseSpiffeId(uri) ? uri : undefined;
}

/** The SPIFFE ID of a TLS peer (from `socket.getPeerCertificate()`), or undefined when it has not exactly one valid one. */
export function spiffeIdFromPeerCertificate(cert: PeerCertificate | DetailedPeerCertificate | undefined): string | undefined {
  return identityFromSanText(cert?.subjectaltname);
}

/** The SPIFFE ID of a parsed certificate, or undefined when it has not exactly one valid one. */
export function spiffeIdFromX509(cert: X509Certificate): string | undefined {
  return identityFromSanText(cert.subjectAltName);
}
