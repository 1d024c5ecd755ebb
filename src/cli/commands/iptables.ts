// `mycel iptables install|remove`: transparent mode's interception rules for the current network namespace, for an
// init-container style setup where the sidecar then runs with `mycel proxy --transparent --skip-iptables`.

import type { Command } from 'commander';
import { installInterception, Ipv6InterceptionUnavailableError, removeInterception } from '../../proxy/transparent/iptables-apply.js';
import { installText, type InterceptionOptions } from '../../proxy/transparent/iptables-rules.js';
import { CliError, EXIT_USAGE } from '../exit.js';
import { addTransparentOptions, parseTransparentFlags, type TransparentFlags } from '../transparent-flags.js';

interface InstallFlags extends TransparentFlags {
  outboundPort: string;
  inboundPort: string;
  inbound: boolean;
  dryRun?: boolean;
}

function portFlag(flag: string, text: string): number {
  const n = Number(text);
  if (!/^\d{1,5}$/.test(text) || n < 1 || n > 65535) throw new CliError(`invalid ${flag} "${text}": expected a port number`, EXIT_USAGE);
  return n;
}

export function registerIptablesCommand(program: Command): void {
  const cmd = program.command('iptables').description('install or remove the iptables rules of transparent mode (needs root)');
  addTransparentOptions(
    cmd
      .command('install')
      .description('redirect this network namespace\'s TCP to the sidecar (replaces MYCEL_* rules already there)')
      .option('--outbound-port <port>', 'the sidecar\'s outbound listener port', '15001')
      .option('--inbound-port <port>', 'the sidecar\'s inbound (mTLS) listener port', '15006')
      .option('--no-inbound', 'redirect outbound connections only')
      .option('--dry-run', 'print the iptables-restore input instead of applying it'),
  ).action(async (flags: InstallFlags) => {
    const { ipv4Only, ...rest } = parseTransparentFlags(flags);
    const opts: InterceptionOptions = {
      outboundPort: portFlag('--outbound-port', flags.outboundPort),
      inboundPort: portFlag('--inbound-port', flags.inboundPort),
      inbound: flags.inbound,
      ...rest,
    };
    if (flags.dryRun) {
      process.stdout.write(`# iptables-restore --noflush (IPv4)\n${installText(opts, 'ipv4')}`);
      if (!ipv4Only) process.stdout.write(`# ip6tables-restore --noflush (IPv6)\n${installText(opts, 'ipv6')}`);
      return;
    }
    let result;
    try {
      result = await installInterception(opts, { ipv4Only });
    } catch (err) {
      if (err instanceof Ipv6InterceptionUnavailableError) throw new CliError(err.message);
      throw new CliError(`${(err as Error).message}\n  fix: run as root (or with CAP_NET_ADMIN) in the app's network namespace`);
    }
    const families = result.ipv6Skipped === null ? 'IPv4 and IPv6' : `IPv4 only: ${result.ipv6Skipped}`;
    process.stdout.write(`mycel iptables: installed (outbound -> ${opts.outboundPort}${opts.inbound ? `, inbound -> ${opts.inboundPort}` : ''}, sidecar group ${opts.proxyGid}) for ${families}\n`);
  });
  cmd
    .command('remove')
    .description('remove every MYCEL_* chain and the jumps to them (IPv4 and IPv6)')
    .action(async () => {
      let removed: boolean;
      try {
        removed = await removeInterception();
      } catch (err) {
        throw new CliError(`${(err as Error).message}\n  fix: run as root (or with CAP_NET_ADMIN) in the app's network namespace`);
      }
      process.stdout.write(removed ? 'mycel iptables: removed\n' : 'mycel iptables: no MYCEL_* rules were installed\n');
    });
}
