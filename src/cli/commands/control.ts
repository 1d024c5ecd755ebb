// `mycel control`: runs one control-plane replica (API, config streams, registry) on port 7400 over the file store
// (default, under .mycel/) or etcd shared with other replicas.

import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { CaError } from '../../control-plane/ca/ca-certs.js';
import { parseDuration } from '../../api/v1alpha1/duration.js';
import { createLogger } from '../../core/log.js';
import { ControlPlane } from '../../control-plane/control-plane.js';
import { openStore, parseStoreSpec } from '../../control-plane/store/open-store.js';
import { CliError, EXIT_USAGE } from '../exit.js';
import { listenFlag } from '../proxy-flags.js';

interface ControlFlags {
  insecureHttp?: boolean;
  store: string;
  listen: string;
  stateDir?: string;
  lease: string;
  advertise?: string;
  caCert?: string;
  caKey?: string;
  statsInterval: string;
  warmup?: string;
}

export function registerControlCommand(program: Command): void {
  program
    .command('control')
    .description('run a control-plane replica: resource API, config streams to proxies, service registry')
    .option('--store <spec>', 'file:DIR (embedded, default) or etcd:URL[,URL...] (shared by replicas)', 'file:.mycel')
    .option('--listen <addr>', 'API and config-stream address (use 0.0.0.0:7400 for proxies on other hosts)', '127.0.0.1:7400')
    .option('--state-dir <dir>', 'where the admin token and the address file for local CLI use are written (default: the file store\'s DIR, else .mycel)')
    .option('--advertise <url>', 'the URL other replicas reach this one on (default: the --listen address)')
    .option('--lease <duration>', 'how long a registered endpoint lives without a heartbeat', '10s')
    .option('--ca-cert <file>', 'the mesh CA from a file: a root, or an intermediate followed by its root (PEM); default: generated on first start')
    .option('--ca-key <file>', 'the private key of --ca-cert (PEM, EC P-256 or P-384)')
    .option('--insecure-http', 'serve the API in clear text (tests, or TLS terminated in front); default: HTTPS with a certificate from the mesh CA')
    .option('--stats-interval <duration>', 'how often proxies send their golden-signal summaries (mycel stat)', '10s')
    .option('--warmup <duration>', 'after a start with no other replica running, how long running proxies keep their config rather than lose endpoints not re-registered yet (0 = off; default: 10s + --lease)')
    .action(async (flags: ControlFlags) => {
      const spec = parseStoreSpec(flags.store);
      if (spec instanceof Error) throw new CliError(`invalid --store: ${spec.message}`, EXIT_USAGE);
      const leaseMs = parseDuration(flags.lease);
      if (leaseMs === undefined || leaseMs < 500) throw new CliError(`invalid --lease "${flags.lease}": expected a duration of at least 500ms, e.g. 10s`, EXIT_USAGE);
      const statsIntervalMs = parseDuration(flags.statsInterval);
      if (statsIntervalMs === undefined || statsIntervalMs < 100 || statsIntervalMs > 60_000) throw new CliError(`invalid --stats-interval "${flags.statsInterval}": expected a duration from 100ms to 1m, e.g. 10s`, EXIT_USAGE);
      const warmupMs = flags.warmup === undefined ? undefined : parseDuration(flags.warmup);
      if (flags.warmup !== undefined && (warmupMs === undefined || warmupMs > 600_000)) throw new CliError(`invalid --warmup "${flags.warmup}": expected a duration up to 10m, e.g. 20s, or 0 to turn it off`, EXIT_USAGE);
      const listen = listenFlag('--listen', flags.listen);
      if ((flags.caCert === undefined) !== (flags.caKey === undefined)) throw new CliError('--ca-cert and --ca-key go together', EXIT_USAGE);
      let supplied: { certPem: string; keyPem: string } | undefined;
      if (flags.caCert !== undefined && flags.caKey !== undefined) {
        try {
          supplied = { certPem: await readFile(flags.caCert, 'utf8'), keyPem: await readFile(flags.caKey, 'utf8') };
        } catch (err) {
          throw new CliError(`cannot read the CA files: ${(err as Error).message}`, EXIT_USAGE);
        }
      }
      const log = createLogger({ fields: { component: 'control' } });
      const store = await openStore(spec, { leaseTtlSeconds: Math.max(2, Math.ceil(leaseMs / 1000)) });
      let cp: ControlPlane;
      try {
        cp = await ControlPlane.start({ store, listen, stateDir: flags.stateDir ?? (spec.kind === 'file' ? (spec.dir as string) : '.mycel'), leaseMs, statsIntervalMs, ...(warmupMs !== undefined ? { warmupMs } : {}), expireRestored: spec.kind === 'file', insecureHttp: flags.insecureHttp === true, ...(supplied !== undefined ? { ca: { supplied } } : {}), ...(flags.advertise !== undefined ? { advertiseUrl: flags.advertise.replace(/\/+$/, '') } : {}), log });
      } catch (err) {
        // Nothing to hand over: no proxy was served.
        await store.close({ revoke: true }).catch(() => {});
        const e = err as NodeJS.ErrnoException;
        if (err instanceof CaError) throw new CliError(`the mesh CA could not start: ${err.message}`, err.status === 400 ? EXIT_USAGE : 1);
        if (e.code === 'EADDRINUSE') throw new CliError(`cannot listen on ${flags.listen}: the address is in use (another mycel control?); pick another with --listen`);
        throw new CliError(`the control plane could not start: ${e.message}`);
      }
      // Signal handlers before the ready line: whoever reads it may stop us at once.
      let closed: () => void = () => {};
      const stoppedPromise = new Promise<void>((resolve) => {
        closed = resolve;
      });
      let stopping = false;
      const stop = (sig: string) => {
        if (stopping) process.exit(1);
        stopping = true;
        log.info('stopping', { signal: sig });
        void cp.close().finally(closed);
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      if (process.env.MYCEL_EXIT_WITH_PARENT === '1') {
        const parent = process.ppid;
        setInterval(() => {
          if (process.ppid !== parent) stop('the parent process exited');
        }, 500).unref();
      }
      process.stdout.write(`mycel control ready: ${cp.url} (replica ${cp.replica}, store ${store.description}, revision ${store.revision()})\n`);
      await stoppedPromise;
      process.exit(0);
    });
}
