// The mycel command line: parses the verb and hands over to src/cli/commands/<verb>.ts; maps failures to exit codes.
// Only the module of the verb being run is loaded, so a sidecar does not carry the certificate tooling in memory.

import { Command, CommanderError } from 'commander';
import { CliError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './exit.js';

type Register = (program: Command) => void;

const COMMANDS: Record<string, () => Promise<Register>> = {
  proxy: async () => (await import('./commands/proxy.js')).registerProxyCommand,
  'dev-certs': async () => (await import('./commands/dev-certs.js')).registerDevCertsCommand,
  example: async () => (await import('./commands/example.js')).registerExampleCommand,
  control: async () => (await import('./commands/control.js')).registerControlCommand,
  apply: async () => (await import('./commands/apply.js')).registerApplyCommand,
  get: async () => (await import('./commands/get.js')).registerGetCommand,
  run: async () => (await import('./commands/run.js')).registerRunCommand,
  up: async () => (await import('./commands/up.js')).registerUpCommand,
  check: async () => (await import('./commands/check.js')).registerCheckCommand,
  tap: async () => (await import('./commands/tap.js')).registerTapCommand,
  ca: async () => (await import('./commands/ca.js')).registerCaCommand,
  dashboard: async () => (await import('./commands/dashboard.js')).registerDashboardCommand,
  iptables: async () => (await import('./commands/iptables.js')).registerIptablesCommand,
  stat: async () => (await import('./commands/stat.js')).registerStatCommand,
  trace: async () => (await import('./commands/trace.js')).registerTraceCommand,
};
// `get` registers its siblings that share its client code.
COMMANDS.delete = COMMANDS.get!;
COMMANDS.token = COMMANDS.get!;

const program = new Command();
program
  .name('mycel')
  .description('Mycel: a service mesh for HTTP/1.1, HTTP/2, gRPC, WebSocket and TCP')
  .version('0.1.0')
  .showHelpAfterError()
  .exitOverride();

try {
  const verb = process.argv[2];
  // Without a known verb (--help, --version, a typo) every command is registered, each loader once.
  const loaders = verb !== undefined && verb in COMMANDS ? [COMMANDS[verb]!] : [...new Set(Object.values(COMMANDS))];
  for (const load of loaders) (await load())(program);
  await program.parseAsync(process.argv);
  process.exitCode ??= EXIT_OK;
} catch (err) {
  if (err instanceof CommanderError) {
    // Help and version are "errors" to commander; their exit code is already right (0), usage errors get 2.
    process.exitCode = err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  } else if (err instanceof CliError) {
    process.stderr.write(`mycel: ${err.message}\n`);
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`mycel: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = EXIT_FAILURE;
  }
}
