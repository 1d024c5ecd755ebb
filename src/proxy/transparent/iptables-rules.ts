// Transparent mode's netfilter rules as iptables-restore / ip6tables-restore text (nat table, chains named MYCEL_*):
// what to add for each address family, and how to take out whatever MYCEL_* rules an `iptables-save` or
// `ip6tables-save` shows (stale ones from a crashed sidecar included). Pure text.

/** Every chain this module creates starts with this; removal takes out every chain that does. */
export const CHAIN_PREFIX = 'MYCEL_';

export interface InterceptionOptions {
  /** The sidecar's outbound listener port (redirect target of the app's outbound TCP). */
  outboundPort: number;
  /** The sidecar's inbound (mTLS) listener port (redirect target of inbound TCP). */
  inboundPort: number;
  /** Connections made by processes whose group is this one are the sidecar's own and are not redirected. */
  proxyGid: number;
  /** Outbound destination ports left alone (e.g. a database reached directly, the control plane). */
  excludeOutboundPorts: readonly number[];
  /** Inbound destination ports left alone (e.g. ssh, a metrics scraper's port). */
  excludeInboundPorts: readonly number[];
  /** Intercept inbound traffic too (default true); false redirects the app's outbound connections only. */
  inbound: boolean;
}

export const DEFAULT_PROXY_GID = 1337;

/** The address family a rule set is for: `iptables` (IPv4) or `ip6tables` (IPv6); both take the same chains. */
export type Family = 'ipv4' | 'ipv6';

export const FAMILIES: readonly Family[] = ['ipv4', 'ipv6'];

/** Loopback destinations, left alone: the app's calls to itself, a local control plane. */
const LOOPBACK: Record<Family, string> = { ipv4: '127.0.0.0/8', ipv6: '::1/128' };

/**
 * The rules, applied with `iptables-restore --noflush` after `removalText` of the current state:
 *
 *   OUTPUT -> MYCEL_OUTPUT: the sidecar's own connections (owner gid) and loopback destinations return; excluded
 *             ports return; the rest jumps to MYCEL_REDIRECT, which redirects to the outbound port.
 *   PREROUTING -> MYCEL_INBOUND: the inbound port itself and excluded ports return; the rest jumps to
 *             MYCEL_IN_REDIRECT, which redirects to the inbound port.
 *
 * Both families get the same rules but for the loopback range. An IPv6 REDIRECT sends the app's connections to ::1
 * and inbound ones to the interface's own IPv6 address, so the sidecar listens there too (transparent/dual-stack.ts).
 */
export function installText(o: InterceptionOptions, family: Family): string {
  const lines = ['*nat', `:${CHAIN_PREFIX}OUTPUT - [0:0]`, `:${CHAIN_PREFIX}REDIRECT - [0:0]`];
  if (o.inbound) lines.push(`:${CHAIN_PREFIX}INBOUND - [0:0]`, `:${CHAIN_PREFIX}IN_REDIRECT - [0:0]`);
  lines.push(`-A ${CHAIN_PREFIX}REDIRECT -p tcp -j REDIRECT --to-ports ${o.outboundPort}`);
  // Without this the sidecar's own connections to the destination would come straight back to it.
  lines.push(`-A ${CHAIN_PREFIX}OUTPUT -m owner --gid-owner ${o.proxyGid} -j RETURN`);
  // Loopback: the app's calls to itself, and to a control plane or anything else on 127.0.0.0/8 (::1).
  lines.push(`-A ${CHAIN_PREFIX}OUTPUT -d ${LOOPBACK[family]} -j RETURN`);
  for (const p of unique(o.excludeOutboundPorts)) lines.push(`-A ${CHAIN_PREFIX}OUTPUT -p tcp --dport ${p} -j RETURN`);
  lines.push(`-A ${CHAIN_PREFIX}OUTPUT -p tcp -j ${CHAIN_PREFIX}REDIRECT`);
  if (o.inbound) {
    lines.push(`-A ${CHAIN_PREFIX}IN_REDIRECT -p tcp -j REDIRECT --to-ports ${o.inboundPort}`);
    lines.push(`-A ${CHAIN_PREFIX}INBOUND -p tcp --dport ${o.inboundPort} -j RETURN`);
    for (const p of unique(o.excludeInboundPorts)) lines.push(`-A ${CHAIN_PREFIX}INBOUND -p tcp --dport ${p} -j RETURN`);
    lines.push(`-A ${CHAIN_PREFIX}INBOUND -p tcp -j ${CHAIN_PREFIX}IN_REDIRECT`);
    lines.push(`-A PREROUTING -p tcp -j ${CHAIN_PREFIX}INBOUND`);
  }
  lines.push(`-A OUTPUT -p tcp -j ${CHAIN_PREFIX}OUTPUT`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

function unique(ports: readonly number[]): number[] {
  return [...new Set(ports)].sort((a, b) => a - b);
}

/**
 * The iptables-restore text that removes every MYCEL_* chain and every jump to one from the built-in chains, given
 * the output of `iptables-save -t nat` (or ip6tables-save: the syntax is the same); null when there is nothing of ours.
 */
export function removalText(natSave: string): string | null {
  const jumps: string[] = [];
  const chains: string[] = [];
  let inNat = false;
  for (const raw of natSave.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) {
      inNat = line === '*nat';
      continue;
    }
    if (!inNat) continue;
    const chain = /^:(\S+)/.exec(line);
    if (chain !== null) {
      if (chain[1]!.startsWith(CHAIN_PREFIX)) chains.push(chain[1]!);
      continue;
    }
    // A rule of a built-in (or another tool's) chain that jumps into one of ours.
    const rule = /^-A (\S+) (.*)$/.exec(line);
    if (rule !== null && !rule[1]!.startsWith(CHAIN_PREFIX) && new RegExp(`(^| )-[jg] ${CHAIN_PREFIX}\\S+`).test(rule[2]!)) jumps.push(`-D ${rule[1]} ${rule[2]}`);
  }
  if (jumps.length === 0 && chains.length === 0) return null;
  // Flush all before deleting any: our chains jump into each other.
  return ['*nat', ...jumps, ...chains.map((c) => `-F ${c}`), ...chains.map((c) => `-X ${c}`), 'COMMIT', ''].join('\n');
}

/**
 * One iptables-restore transaction that takes out whatever MYCEL_* rules `natSave` shows and installs fresh ones:
 * installing twice, or over the leftovers of a crashed sidecar, leaves exactly one set, with no window without rules.
 */
export function replaceText(natSave: string, o: InterceptionOptions, family: Family): string {
  const removal = removalText(natSave);
  const install = installText(o, family);
  if (removal === null) return install;
  const body = (text: string) => text.split('\n').filter((l) => l !== '' && l !== '*nat' && l !== 'COMMIT');
  return ['*nat', ...body(removal), ...body(install), 'COMMIT', ''].join('\n');
}

/** Parses a comma-separated port list flag (`--exclude-outbound-ports 22,5432`); throws with the bad item. */
export function parsePortList(text: string | undefined): number[] {
  if (text === undefined || text.trim() === '') return [];
  return text.split(',').map((item) => {
    const t = item.trim();
    const n = Number(t);
    if (!/^\d{1,5}$/.test(t) || n < 1 || n > 65535) throw new Error(`"${t}" is not a port number (1-65535)`);
    return n;
  });
}
