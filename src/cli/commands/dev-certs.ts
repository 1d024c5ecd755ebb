// `mycel dev-certs`: writes a throwaway development CA and SPIFFE workload certificates for sidecars that take
// their identity from files (`mycel proxy --cert --key --ca`) until the mesh CA issues them.

import type { Command } from 'commander';
import { parseDuration } from '../../api/v1alpha1/duration.js';
import { DevCertsError, writeDevCertificates } from '../../security/dev-ca.js';

interface DevCertsFlags {
  out?: string;
  trustDomain: string;
  namespace: string;
  lifetime: string;
}

const EXAMPLE = `
Example:
  $ mycel dev-certs --out .mycel/certs web api
  $ mycel proxy --service web --app-port 3000 --cert .mycel/certs/web.crt --key .mycel/certs/web.key --ca .mycel/certs/ca.crt ...

A CA already in the directory is reused, so that certificates for more services can be added later.
These certificates are for development only.`;

function fail(error: DevCertsError): void {
  process.stderr.write(`mycel dev-certs: ${error.message}\n  fix: ${error.fix}\n`);
  process.exitCode = error.usage ? 2 : 1;
}

async function run(services: string[], flags: DevCertsFlags): Promise<void> {
  if (flags.out === undefined || flags.out === '') {
    return fail(new DevCertsError('no output directory given', 'pass --out DIR, for example --out .mycel/certs', { usage: true }));
  }
  if (services.length === 0) {
    return fail(new DevCertsError('no service named', 'name the services after the options, for example: mycel dev-certs --out .mycel/certs web api', { usage: true }));
  }
  const ms = parseDuration(flags.lifetime);
  if (ms === undefined || ms < 1000 || ms % 1000 !== 0) {
    return fail(new DevCertsError(`--lifetime "${flags.lifetime}" is not a duration of whole seconds`, 'pass a duration such as 24h, 90m or 3600s', { usage: true }));
  }
  let result;
  try {
    result = await writeDevCertificates(flags.out, { trustDomain: flags.trustDomain, namespace: flags.namespace, services, lifetimeSeconds: ms / 1000 });
  } catch (err) {
    if (err instanceof DevCertsError) return fail(err);
    return fail(new DevCertsError(`unexpected failure: ${(err as Error).message ?? String(err)}`, 'run again with MYCEL_LOG_LEVEL=debug and report the message', { cause: err }));
  }
  if (!result.caCreated) process.stdout.write(`using the CA in ${result.caCertPath} (valid until ${result.caNotAfter.toISOString()})\n`);
  const leaves = new Map(result.workloads.map((w) => [w.certPath, w]));
  for (const path of result.written) {
    const leaf = leaves.get(path);
    if (leaf) process.stdout.write(`wrote ${path}  ${leaf.spiffeId} (valid until ${leaf.notAfter.toISOString()})\n`);
    else if (path === result.caCertPath) process.stdout.write(`wrote ${path}  new development CA (valid until ${result.caNotAfter.toISOString()})\n`);
    else process.stdout.write(`wrote ${path}\n`);
  }
}

/** Adds `mycel dev-certs --out DIR [--trust-domain TD] [--namespace NS] [--lifetime 24h] SERVICE...`. */
export function registerDevCertsCommand(program: Command): Command {
  return program
    .command('dev-certs')
    .summary('write a development CA and SPIFFE workload certificates')
    .description('Write a development CA (ca.crt, ca.key) and, per service, a workload certificate with its SPIFFE ID (SERVICE.crt, SERVICE.key; keys mode 0600).')
    // Checked in run(), not by commander, so that a missing value exits with the usage code 2 and says what to do.
    .argument('[service...]', 'services to issue a certificate for (DNS labels such as web, api)')
    .option('--out <dir>', 'directory for the files (created if missing)')
    .option('--trust-domain <domain>', 'SPIFFE trust domain', 'mycel.local')
    .option('--namespace <name>', 'namespace of the services', 'default')
    .option('--lifetime <duration>', 'lifetime of each workload certificate (24h, 90m, 3600s)', '24h')
    .addHelpText('after', EXAMPLE)
    .action((services: string[], flags: DevCertsFlags) => run(services, flags));
}
