// `mycel run --service NAME --port PORT [--upstream NAME=PORT]... -- CMD ARGS`: starts any app with a sidecar next to
// it, joined to the running local mesh: sidecar ready first, then the app; on exit the app stops first, then the sidecar.

import type { Command } from 'commander';
import { parseDuration } from '../../api/v1alpha1/duration.js';
import { ChildStartError } from '../../local/mycel-child.js';
import { MeshMember, upstreamVariable } from '../../local/mesh-member.js';
import { waitForListening } from '../../local/ports.js';
import { controlClient, meshAccess, type ClientFlags } from '../control-client.js';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from '../exit.js';
import { parseLabels, parseUpstream } from '../proxy-flags.js';

interface RunFlags extends ClientFlags {
  service: string;
  port: string;
  namespace: string;
  upstream: string[];
  label: string[];
  dir: string;
  grace: string;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const EXAMPLE = `
Examples:
  $ mycel run --service files --port 8000 -- python3 -m http.server 8000 --bind 127.0.0.1
  $ mycel run --service poller --port 9 -- sh -c 'while sleep 1; do curl -s http://files/; done'
  $ mycel run --service web --port 3000 --upstream catalog=9191 --label version=v2 -- node web.js

The app gets HTTP_PROXY/http_proxy (its sidecar's outbound listener; NO_PROXY keeps loopback direct), MYCEL_SERVICE,
MYCEL_OUTBOUND, MYCEL_ADMIN and MYCEL_UPSTREAM_<NAME>=HOST:PORT per upstream binding (use port 0 to let the sidecar pick).
The local mesh is found like other client commands: --control, MYCEL_CONTROL, or DIR/control.json (written by mycel up).`;

const collect = (v: string, prev: string[]) => [...prev, v];

export function registerRunCommand(program: Command): void {
  program
    .command('run')
    .description('start an app with its own sidecar, joined to the running local mesh')
    .requiredOption('--service <name>', 'the service this app is an instance of')
    .requiredOption('--port <port>', 'the port the app listens on (the sidecar forwards inbound requests there)')
    .option('--upstream <name=port>', 'a local port that leads to one service, e.g. api=9191 (repeatable; port 0: any, see MYCEL_UPSTREAM_<NAME>)', collect, [] as string[])
    .option('--label <key=value>', 'an endpoint label such as version=v2 (repeatable)', collect, [] as string[])
    .option('--namespace <ns>', 'the service\'s namespace', 'default')
    .option('--dir <dir>', 'the local mesh\'s state directory (certs, tokens, logs)', '.mycel')
    .option('--grace <duration>', 'how long the app has to exit after SIGTERM before it is killed', '10s')
    .option('--control <url>', 'control-plane URL (default: MYCEL_CONTROL, DIR/control.json, 127.0.0.1:7400)')
    .option('--token <file>', 'admin token file (default: MYCEL_TOKEN or DIR/admin-token)')
    .option('--ca <file>', 'mesh root(s) to verify the control plane with (default: MYCEL_CA, or ca.pem in the state directory)')
    .argument('<command...>', 'the app to start, after --')
    .addHelpText('after', EXAMPLE)
    .action(async (command: string[], flags: RunFlags) => {
      if (!DNS_LABEL.test(flags.service)) throw new CliError(`invalid --service "${flags.service}": expected a DNS label such as web`, EXIT_USAGE);
      if (!DNS_LABEL.test(flags.namespace)) throw new CliError(`invalid --namespace "${flags.namespace}": expected a DNS label`, EXIT_USAGE);
      const port = Number(flags.port);
      if (!Number.isInteger(port) || port < 1 || port > 65535) throw new CliError(`invalid --port "${flags.port}": expected the port number the app listens on`, EXIT_USAGE);
      const graceMs = parseDuration(flags.grace);
      if (graceMs === undefined) throw new CliError(`invalid --grace "${flags.grace}": expected a duration such as 10s`, EXIT_USAGE);
      for (const u of flags.upstream) parseUpstream(u);
      const labels = parseLabels(flags.label);
      const [cmd, ...args] = command;
      if (cmd === undefined) throw new CliError('no app to run: give its command after --', EXIT_USAGE);
      const say = (s: string) => process.stderr.write(`mycel run: ${s}\n`);

      const client = controlClient({ ...flags, stateDir: flags.dir });
      say(`joining the mesh at ${client.url} as ${flags.namespace}/${flags.service}`);
      let member: MeshMember;
      try {
        member = await MeshMember.startSidecar({ service: flags.service, namespace: flags.namespace, appPort: port, upstreams: flags.upstream, labels, stateDir: flags.dir, mesh: meshAccess(client) });
      } catch (err) {
        if (err instanceof ChildStartError) throw new CliError(`${err.message}\n  fix: run \`mycel check\` to see what is wrong with the mesh`, EXIT_FAILURE);
        throw err;
      }
      const a = member.addresses;
      say(`sidecar ready: outbound ${a.outbound} (HTTP_PROXY) inbound ${a.inbound} (mTLS) admin ${a.admin}; log ${member.sidecar.logFile}`);
      for (const [name, addr] of Object.entries(a.upstreams)) say(`upstream ${name} -> ${addr} (${upstreamVariable(name)})`);
      const app = await member.startApp({ command: cmd, args, output: 'inherit', graceMs });
      say(`app started: ${command.join(' ')} (port ${port})`);

      let appDone = false;
      void waitForListening(port, 60_000, () => appDone).then((up) => up && say(`app listening on 127.0.0.1:${port}`));
      const code = await new Promise<number>((resolve) => {
        let stopping = false;
        const stop = (why: string) => {
          if (stopping) {
            // A second Ctrl-C: leave now; the app's watchdog and the sidecar notice and exit on their own.
            say('second signal: exiting without waiting');
            process.exit(EXIT_FAILURE);
          }
          stopping = true;
          say(`${why}: stopping the app, then draining the sidecar`);
          void member.stop().then((c) => resolve(c ?? EXIT_FAILURE));
        };
        process.on('SIGINT', () => stop('SIGINT'));
        process.on('SIGTERM', () => stop('SIGTERM'));
        process.on('SIGHUP', () => stop('SIGHUP'));
        void app.exited.then(async (c) => {
          appDone = true;
          if (stopping) return;
          stopping = true;
          say(`the app exited with code ${c}; draining the sidecar`);
          await member.sidecar.stop(35_000);
          resolve(c);
        });
        void member.sidecar.exited.then(async (c) => {
          if (stopping) return;
          stopping = true;
          say(`the sidecar exited unexpectedly (code ${c}; its log: ${member.sidecar.logFile}); stopping the app`);
          await app.stop();
          resolve(EXIT_FAILURE);
        });
      });
      say(`stopped (exit code ${code})`);
      process.exit(code);
    });
}
