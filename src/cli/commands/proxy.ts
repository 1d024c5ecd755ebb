// `mycel proxy`: runs a sidecar. With --config it runs from resource files (watched, reloaded, last good kept).

import type { Command } from 'commander';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { ConfigInvalidError, formatProblem } from '../../api/v1alpha1/load.js';
import { splitPinnedToken } from '../../api/v1alpha1/join-token.js';
import { ControlTrust } from '../../security/control-trust.js';
import { createLogger } from '../../core/log.js';
import type { ListenAddress } from '../../core/listen-address.js';
import { Sidecar, SidecarConfigError, type ControlOptions } from '../../proxy/sidecar.js';
import { CliError, EXIT_USAGE } from '../exit.js';
import { listenFlag, parseLabels, parseUpstream } from '../proxy-flags.js';
import { addTransparentOptions, becomeProxyGroup, parseTransparentFlags, type TransparentFlags } from '../transparent-flags.js';
import { originalDstUnavailable } from '../../proxy/transparent/original-dst.js';
import { installInterception, Ipv6InterceptionUnavailableError, removeInterceptionSync } from '../../proxy/transparent/iptables-apply.js';
import type { Logger } from '../../core/log.js';


interface ProxyFlags extends TransparentFlags {
  service: string;
  appPort: string;
  config?: string[];
  control?: string;
  token?: string;
  transparent?: boolean;
  skipIptables?: boolean;
  inbound: string;
  outbound: string;
  admin: string;
  upstream: string[];
  cert?: string;
  key?: string;
  ca?: string;
  namespace: string;
  advertise?: string;
  label: string[];
  stateDir?: string;
}

/**
 * What verifies the control plane: --ca FILE, else MYCEL_CA, else the root the join token pins (else the bundle kept
 * under the state dir from an earlier run).
 */
async function controlTrust(flags: ProxyFlags, rootFingerprint: string | undefined): Promise<ControlTrust> {
  // With --cert/--key, --ca is the workloads' trust bundle (maybe another CA), not what verifies the control plane.
  const file = (flags.cert === undefined ? flags.ca : undefined) ?? process.env.MYCEL_CA;
  let caPem: string | undefined;
  if (file !== undefined) {
    try {
      caPem = await readFile(file, 'utf8');
    } catch (err) {
      throw new CliError(`cannot read the mesh root file ${file}: ${(err as Error).message}`, EXIT_USAGE);
    }
  }
  const trust = new ControlTrust({ ...(caPem !== undefined ? { caPem } : {}), ...(rootFingerprint !== undefined ? { rootFingerprint } : {}) });
  return trust;
}

/** The address other hosts reach this sidecar on: the inbound listener's own, else this host's first external IPv4. */
function advertiseAddress(inbound: ListenAddress): string {
  if (inbound.host !== '0.0.0.0' && inbound.host !== '::') return inbound.host;
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

interface TransparentSetup {
  gid: number;
  excludeOutboundPorts: number[];
  excludeInboundPorts: number[];
  ipv4Only: boolean;
}

/**
 * `--transparent`: checks that the SO_ORIGINAL_DST addon loads (else falls back to explicit mode, loudly) and switches
 * to the sidecar's group; returns whether the sidecar runs transparently.
 */
function prepareTransparent(flags: ProxyFlags, log: Logger): TransparentSetup | null {
  if (!flags.transparent) return null;
  const t = parseTransparentFlags(flags);
  const why = originalDstUnavailable();
  if (why !== null) {
    log.warn('--transparent is unavailable here, running in explicit mode: apps must send to the outbound listener or use --upstream bindings', { reason: why.message });
    return null;
  }
  becomeProxyGroup(t.proxyGid);
  return { gid: t.proxyGid, excludeOutboundPorts: t.excludeOutboundPorts, excludeInboundPorts: t.excludeInboundPorts, ipv4Only: t.ipv4Only };
}

/**
 * Installs the rules before the sidecar opens any connection: a connection already open when NAT rules appear is
 * picked up by conntrack mid-stream, and the PREROUTING redirect would send its incoming packets to the inbound port
 * (the peer gets a reset). The ports must therefore be fixed in advance. The rules go again when the process exits.
 */
async function interceptBeforeStart(t: TransparentSetup, outboundPort: number, inboundPort: number, log: Logger): Promise<void> {
  if (outboundPort === 0 || inboundPort === 0) throw new CliError('--transparent needs fixed --outbound and --inbound ports (not 0): the rules redirect to them', EXIT_USAGE);
  process.on('exit', () => {
    const err = removeInterceptionSync();
    if (err !== null) process.stderr.write(`mycel: could not remove the iptables rules: ${err}; run \`mycel iptables remove\`\n`);
  });
  let result;
  try {
    result = await installInterception({ outboundPort, inboundPort, proxyGid: t.gid, excludeOutboundPorts: t.excludeOutboundPorts, excludeInboundPorts: t.excludeInboundPorts, inbound: true }, { ipv4Only: t.ipv4Only });
  } catch (err) {
    if (err instanceof Ipv6InterceptionUnavailableError) throw new CliError(`cannot start transparent mode: ${err.message}`);
    throw new CliError(`cannot install the transparent-mode rules: ${(err as Error).message}\n  fix: run as root in the app's network namespace, or install them beforehand (mycel iptables install) and pass --skip-iptables`);
  }
  // With IPv6 off there is nothing to intercept; with --ipv4-only the operator accepted a way around the sidecar.
  if (result.ipv6Skipped !== null && t.ipv4Only) log.warn('IPv6 connections are not intercepted', { reason: result.ipv6Skipped });
  else if (result.ipv6Skipped !== null) log.info('IPv6 connections are not intercepted', { reason: result.ipv6Skipped });
  log.info('transparent interception installed', { outboundPort, inboundPort, proxyGid: t.gid, families: result.families });
}

export function registerProxyCommand(program: Command): void {
  const cmd = program
    .command('proxy')
    .description('run a sidecar proxy next to one service instance')
    .requiredOption('--service <name>', 'the service this sidecar belongs to')
    .requiredOption('--app-port <port>', 'the local port the app listens on (inbound traffic goes there)')
    .option('--config <file...>', 'run from resource files (Service, MeshConfig), watched and reloaded')
    .option('--control <url>', 'take config from this control plane (and register this sidecar\'s endpoint there); several replicas: URL1,URL2 (tried in turn when the stream breaks)')
    .option('--token <file>', 'join token file for --control (mycel token create --service NAME), or the admin token')
    .option('--namespace <ns>', 'the service\'s namespace', 'default')
    .option('--advertise <addr>', 'with --control: the address other sidecars reach this one on (default: the inbound address, or this host\'s IPv4)')
    .option('--label <key=value>', 'a label of this instance such as version=v2 or zone=a (repeatable); with --control it is registered on the endpoint; zone= makes callers prefer their own zone', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--state-dir <dir>', 'with --control: where the last good config is kept (default .mycel/proxies/NS-SERVICE)')
    .option('--transparent', 'intercept the app\'s TCP with iptables (installed now, removed on exit) and send each connection by its original destination')
    .option('--skip-iptables', 'with --transparent: the rules are installed already (mycel iptables install); only run the sidecar')
    .option('--inbound <addr>', 'mTLS listener other sidecars reach', '0.0.0.0:15006')
    .option('--outbound <addr>', 'listener the app sends its requests to (HTTP proxy)', '127.0.0.1:15001')
    .option('--admin <addr>', 'admin listener: /ready /live /config /metrics, POST /drain', '127.0.0.1:15000')
    .option('--upstream <name=port>', 'a local port that leads to one service, e.g. api=9191 (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--cert <file>', 'workload certificate (PEM) with a SPIFFE ID')
    .option('--key <file>', 'private key of the workload certificate (PEM)')
    .option('--ca <file>', 'trust bundle (PEM); with --control alone: the mesh root(s) that verify the control plane (default: MYCEL_CA, or the root the join token pins)');
  addTransparentOptions(cmd)
    .action(async (flags: ProxyFlags) => {
      if (flags.control !== undefined && flags.config !== undefined) throw new CliError('--control and --config exclude each other: config comes from the control plane or from files', EXIT_USAGE);
      if (flags.control === undefined && (!flags.config || flags.config.length === 0)) throw new CliError('missing --config FILE or --control URL: the sidecar needs its resource files (Service, MeshConfig) or a control plane', EXIT_USAGE);
      if (flags.control !== undefined && flags.token === undefined) throw new CliError('--control needs --token FILE (a join token: mycel token create --service NAME)', EXIT_USAGE);
      const appPort = Number(flags.appPort);
      if (!Number.isInteger(appPort) || appPort < 1 || appPort > 65535) throw new CliError(`invalid --app-port "${flags.appPort}": expected a port number`, EXIT_USAGE);
      const idFlags = [flags.cert, flags.key, flags.ca].filter((x) => x !== undefined).length;
      // With --control, --ca alone names the mesh roots that verify the control plane.
      if (idFlags !== 0 && idFlags !== 3 && !(idFlags === 1 && flags.ca !== undefined && flags.control !== undefined)) throw new CliError('--cert, --key and --ca go together', EXIT_USAGE);
      const log = createLogger({ fields: { component: 'proxy', service: flags.service } });
      // Before any connection is made: the sidecar's own connections must carry its group from the first one on.
      const transparent = prepareTransparent(flags, log);
      const inbound = listenFlag('--inbound', flags.inbound);
      const outbound = listenFlag('--outbound', flags.outbound);
      if (transparent !== null && !flags.skipIptables) await interceptBeforeStart(transparent, outbound.port, inbound.port, log);
      const labels = parseLabels(flags.label);
      let control: ControlOptions | undefined;
      if (flags.control !== undefined) {
        let text: string;
        try {
          text = (await readFile(flags.token as string, 'utf8')).trim();
        } catch (err) {
          throw new CliError(`cannot read the token file ${flags.token}: ${(err as Error).message}`, EXIT_USAGE);
        }
        const { token, rootFingerprint } = splitPinnedToken(text);
        // Several replicas: `--control URL1,URL2`; the stream moves on to the next when one breaks.
        const [url, ...alternates] = flags.control.split(',').filter((u) => u.trim() !== '').map((u) => {
          const trimmed = u.trim().replace(/\/+$/, '');
          return /^https?:\/\//.test(trimmed) ? trimmed : `https://${trimmed}`;
        });
        if (url === undefined) throw new CliError('--control needs a URL', EXIT_USAGE);
        control = {
          url,
          ...(alternates.length > 0 ? { alternates } : {}),
          token,
          trust: await controlTrust(flags, rootFingerprint),
          namespace: flags.namespace,
          advertise: flags.advertise ?? advertiseAddress(inbound),
          labels,
          stateDir: flags.stateDir ?? join('.mycel', 'proxies', `${flags.namespace}-${flags.service}`),
          proxyId: `${flags.service}-${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
        };
      }
      let sidecar: Sidecar;
      try {
        sidecar = await Sidecar.start({
          service: flags.service,
          appPort,
          configFiles: flags.config ?? [],
          ...(control !== undefined ? { control } : {}),
          inbound,
          outbound,
          admin: listenFlag('--admin', flags.admin),
          upstreams: flags.upstream.map(parseUpstream),
          transparent: transparent !== null,
          ...(labels.zone !== undefined ? { zone: labels.zone } : {}),
          ...(idFlags === 3 ? { identityFiles: { cert: flags.cert as string, key: flags.key as string, ca: flags.ca as string } } : {}),
          log,
        });
      } catch (err) {
        if (err instanceof ConfigInvalidError) throw new CliError(`invalid config:\n${err.problems.map(formatProblem).join('\n')}`, EXIT_USAGE);
        if (err instanceof SidecarConfigError) throw new CliError(err.message, EXIT_USAGE);
        if (err instanceof Error && err.message.startsWith('the control plane refused')) throw new CliError(`${err.message}\n  fix: use a join token for this service (mycel token create --service ${flags.service})`, EXIT_USAGE);
        throw err;
      }
      // Signal handlers first, then the ready line: whoever reads that line may stop us at once (a SIGTERM before the
      // handlers exist would kill the process without its drain).
      const stopped = new Promise<void>((resolve) => {
        sidecar.onStopped = resolve;
      });
      let signals = 0;
      const onSignal = (sig: NodeJS.Signals) => {
        if (++signals > 1) {
          log.warn('second signal: exiting without waiting for the drain', { signal: sig });
          process.exit(1);
        }
        void sidecar.drain(sig);
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      process.on('SIGHUP', () => void sidecar.reloadConfig());
      // Started by a supervisor (mycel example, tests, later mycel up/run): when it dies, so do we, after a drain.
      if (process.env.MYCEL_EXIT_WITH_PARENT === '1') {
        const parent = process.ppid;
        setInterval(() => {
          if (process.ppid !== parent) void sidecar.drain('the parent process exited');
        }, 500).unref();
      }
      const a = sidecar.addresses;
      // One human line on stdout with the addresses (scripts and `mycel run` read it).
      process.stdout.write(
        `mycel proxy ${flags.service} ready: outbound ${a.outbound.host}:${a.outbound.port} inbound ${a.inbound.host}:${a.inbound.port} admin ${a.admin.host}:${a.admin.port}` +
          Object.entries(a.upstreams).map(([k, v]) => ` upstream ${k}=${v.host}:${v.port}`).join('') +
          '\n',
      );
      await stopped;
      // Drained: whatever a library may still hold open must not keep a stopped sidecar alive.
      process.exit(0);
    });
}
