// Flags of transparent mode shared by `mycel proxy --transparent` and `mycel iptables install`: the sidecar's group
// (whose traffic the rules leave alone) and the excluded ports; and switching this process to that group.

import type { Command } from 'commander';
import { DEFAULT_PROXY_GID, parsePortList } from '../proxy/transparent/iptables-rules.js';
import { CliError, EXIT_USAGE } from './exit.js';

export interface TransparentFlags {
  proxyGid: string;
  excludeOutboundPorts?: string;
  excludeInboundPorts?: string;
  ipv4Only?: boolean;
}

export function addTransparentOptions(cmd: Command): Command {
  return cmd
    .option('--proxy-gid <gid>', 'group id the sidecar runs as; the rules do not redirect its own connections', String(DEFAULT_PROXY_GID))
    .option('--exclude-outbound-ports <ports>', 'comma-separated destination ports the app reaches directly, not through the sidecar')
    .option('--exclude-inbound-ports <ports>', 'comma-separated local ports whose inbound connections are not redirected (e.g. 22)')
    .option('--ipv4-only', 'intercept IPv4 only, accepting that IPv6 connections bypass the sidecar (without it, IPv6 that is on but cannot be intercepted is an error)');
}

export function parseTransparentFlags(f: TransparentFlags): { proxyGid: number; excludeOutboundPorts: number[]; excludeInboundPorts: number[]; ipv4Only: boolean } {
  const gid = Number(f.proxyGid);
  if (!/^\d+$/.test(f.proxyGid) || gid < 1 || gid > 0xfffffffe) throw new CliError(`invalid --proxy-gid "${f.proxyGid}": expected a group id other than 0 (root's group is the app's too)`, EXIT_USAGE);
  const ports = (flag: string, text: string | undefined) => {
    try {
      return parsePortList(text);
    } catch (err) {
      throw new CliError(`invalid ${flag}: ${(err as Error).message}`, EXIT_USAGE);
    }
  };
  return { proxyGid: gid, excludeOutboundPorts: ports('--exclude-outbound-ports', f.excludeOutboundPorts), excludeInboundPorts: ports('--exclude-inbound-ports', f.excludeInboundPorts), ipv4Only: f.ipv4Only === true };
}

/**
 * Makes this process run with group `gid`, so that the owner match of the rules recognises its connections. Root can
 * switch (and keeps its user id, so it can still remove the rules on exit); anyone else must have been started so.
 */
export function becomeProxyGroup(gid: number): void {
  if (process.getgid === undefined || process.setgid === undefined) throw new CliError('transparent mode needs Linux', EXIT_USAGE);
  if (process.getgid() === gid && process.getegid!() === gid) return;
  if (process.getuid!() !== 0) throw new CliError(`the sidecar must run with group ${gid} (--proxy-gid) in transparent mode, or as root so that it can switch; it runs with group ${process.getgid()}`, EXIT_USAGE);
  process.setgid(gid);
}
