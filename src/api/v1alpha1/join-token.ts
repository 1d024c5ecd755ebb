// A join token as `mycel token create` prints it: the token, then the SHA-256 fingerprint of the mesh root that a new
// sidecar pins to verify the control plane's TLS certificate before it has any trust bundle (as kubeadm's CA hash).

const PIN = /^(.+)~sha256:([0-9a-f]{64})$/;

/** `<token>~sha256:<root fingerprint>`. */
export function pinnedToken(token: string, rootFingerprint: string): string {
  return `${token}~sha256:${rootFingerprint}`;
}

/** The token the control plane checks, and the root fingerprint it carries (if any). */
export function splitPinnedToken(text: string): { token: string; rootFingerprint?: string } {
  const m = PIN.exec(text.trim());
  return m === null ? { token: text.trim() } : { token: m[1] as string, rootFingerprint: m[2] as string };
}
