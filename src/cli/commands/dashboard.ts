// `mycel dashboard`: prints the dashboard's URL with a one-time sign-in link, and opens it in a browser if there is
// one. The control plane and the admin token are found as for every client command (.mycel/ of the local mesh).

import type { Command } from 'commander';
import type { ClientFlags } from '../control-client.js';
import { controlClient } from '../control-client.js';
import { showDashboard } from '../open-dashboard.js';

interface DashboardFlags extends ClientFlags {
  dir: string;
  browser: boolean;
}

export function registerDashboardCommand(program: Command): void {
  program
    .command('dashboard')
    .description('open the web dashboard: prints its URL and a one-time sign-in link, and opens a browser when there is one')
    .option('--dir <dir>', "the local mesh's state directory", '.mycel')
    .option('--control <url>', 'control-plane URL (default: MYCEL_CONTROL, DIR/control.json, 127.0.0.1:7400)')
    .option('--token <file>', 'admin token file (default: MYCEL_TOKEN or DIR/admin-token)')
    .option('--ca <file>', 'mesh root(s) to verify the control plane with (default: MYCEL_CA, or ca.pem in the state directory)')
    .option('--no-browser', 'only print the links')
    .action(async (flags: DashboardFlags) => {
      await showDashboard(controlClient({ ...flags, stateDir: flags.dir }), flags.browser, (s) => process.stdout.write(s));
    });
}
