// The mycel command line: parses the verb and hands over to src/cli/commands/<verb>.ts; maps failures to exit codes.

import { Command, CommanderError } from 'commander';
import { registerProxyCommand } from './commands/proxy.js';
import { registerDevCertsCommand } from './commands/dev-certs.js';
import { registerExampleCommand } from './commands/example.js';
import { CliError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './exit.js';

const program = new Command();
program
  .name('mycel')
  .description('Mycel: a service mesh for HTTP/1.1, HTTP/2, gRPC, WebSocket and TCP')
  .version('0.1.0')
  .showHelpAfterError()
  .exitOverride();

registerProxyCommand(program);
registerDevCertsCommand(program);
registerExampleCommand(program);

try {
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
