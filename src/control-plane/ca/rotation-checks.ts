// The safety checks of a root rotation, over what the proxies report (their certificate's root and trust bundle):
// a root may issue only once every proxy trusts it, and may leave the bundle only once no proxy's leaf depends on it.

export interface ProxyCertReport {
  proxyId: string;
  service: string;
  namespace: string;
  certRoot?: string;
  trustedRoots?: string[];
}

const who = (p: ProxyCertReport): string => `${p.namespace}/${p.service} (${p.proxyId})`;

/** Proxies with a mesh certificate whose trust bundle lacks `root` (they would refuse leaves issued under it). */
export function notTrusting(root: string, proxies: readonly ProxyCertReport[]): string[] {
  return proxies.filter((p) => p.trustedRoots !== undefined && !p.trustedRoots.includes(root)).map(who);
}

/** Proxies whose current leaf chains to `root` (removing it would make their peers refuse them). */
export function dependingOn(root: string, proxies: readonly ProxyCertReport[]): string[] {
  return proxies.filter((p) => p.certRoot === root).map(who);
}

/** One line naming at most a few proxies, for a problem message. */
export function listSome(names: readonly string[], max = 5): string {
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')} and ${names.length - max} more`;
}
