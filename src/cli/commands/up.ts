// `mycel up [--demo] [--dir .mycel]`: the local mesh in one command. Starts a control plane (file store under DIR),
// with --demo applies examples/demo/*.yaml and starts the demo's services, each with its own sidecar, and a load
// generator; Ctrl-C drains the apps, then the sidecars, then the control plane. No child outlives it, even a SIGKILL.

import type { Command } from 'commander';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { parseDuration } from '../../api/v1alpha1/duration.js';
import { demoResourceFiles, startDemo, stopDemo, type RunningDemo } from '../../local/demo.js';
import { ChildStartError, startMycelChild, type MycelChild } from '../../local/mycel-child.js';
import { Progress } from '../../local/progress.js';
import { controlClient, meshAccess } from '../control-client.js';
import { CliError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from '../exit.js';
import { showDashboard } from '../open-dashboard.js';
import { applyFiles } from './apply.js';

interface UpFlags {
  demo?: boolean;
  open?: boolean;
  dir: string;
  listen: string;
  grace: string;
}

const CONTROL_READY = /mycel control ready: (\S+) /;

/** A mesh already running on this directory would fight over its store: say so, with how to stop it. */
async function refuseIfRunning(dir: string): Promise<void> {
  let state: { url?: string; pid?: number };
  try {
    state = JSON.parse(await readFile(join(dir, 'control.json'), 'utf8')) as typeof state;
  } catch {
    return;
  }
  if (typeof state.pid !== 'number' || state.pid === process.pid) return;
  try {
    process.kill(state.pid, 0);
  } catch {
    return; // that control plane is gone: its files are stale, and the store is free
  }
  throw new CliError(`a control plane already runs on ${dir} (${state.url ?? '?'}, pid ${state.pid})\n  fix: use that mesh (mycel run, mycel apply), stop it (Ctrl-C in its terminal, or kill ${state.pid}), or pass another --dir`, EXIT_FAILURE);
}

function summary(dir: string, url: string, demo: RunningDemo | null): string {
  const rel = relative(process.cwd(), dir) || '.';
  if (demo === null) {
    return `
The local mesh runs: control plane ${url}, dashboard ${url}/ (npx mycel dashboard signs a browser in).
Add any app with its own sidecar, for example:
  npx mycel run --dir ${rel} --service files --port 8000 -- python3 -m http.server 8000 --bind 127.0.0.1
Then: npx mycel get proxies, npx mycel check. Logs: ${join(rel, 'logs')}/. Ctrl-C drains and stops everything.
`;
  }
  const rows = demo.members.map((m) => [m.demo.instance, `127.0.0.1:${m.appPort}`, m.member.addresses.outbound, m.member.addresses.inbound, m.member.addresses.admin]);
  const header = ['INSTANCE', 'APP', 'SIDECAR OUTBOUND', 'INBOUND (mTLS)', 'ADMIN'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const table = [header, ...rows].map((r) => '  ' + r.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd()).join('\n');
  const web = demo.members.find((m) => m.demo.instance === 'web');
  const loadgen = demo.members.find((m) => m.demo.instance === 'loadgen');
  return `
${table}

The demo runs. Dashboard: ${url}/ (the live service graph; \`npx mycel dashboard\` signs a browser in). Try:
  open http://127.0.0.1:${web?.appPort}/products/1              the shop: web calls catalog (gRPC), reviews, ratings (HTTP/2) through the mesh
  curl -x http://${loadgen?.member.addresses.outbound} http://web/api/products/1 -H 'x-user: tester'
                                                     into the mesh through loadgen's sidecar (tester: always reviews v2)
  curl http://127.0.0.1:${loadgen?.appPort}/                     what the load generator sees: statuses, the 90/10 canary split
  npx mycel get proxies; npx mycel check; npx mycel apply -f examples/demo/reviews-canary.yaml (after editing the weights)
Control plane ${url}. Logs: ${join(rel, 'logs')}/. Walkthrough: examples/demo/README.md. Ctrl-C drains and stops everything.
`;
}

export function registerUpCommand(program: Command): void {
  program
    .command('up')
    .description('run a local mesh: a control plane, and with --demo the demo app with a sidecar per service')
    .option('--demo', 'also apply examples/demo/*.yaml and start the demo services and a load generator')
    .option('--open', 'open the dashboard in a browser once the mesh is ready (signed in)')
    .option('--dir <dir>', 'state directory: store, certificates, tokens, logs', '.mycel')
    .option('--listen <addr>', 'control-plane address', '127.0.0.1:7400')
    .option('--grace <duration>', 'how long each app has to exit after SIGTERM before it is killed', '5s')
    .action(async (flags: UpFlags) => {
      const graceMs = parseDuration(flags.grace);
      if (graceMs === undefined) throw new CliError(`invalid --grace "${flags.grace}": expected a duration such as 5s`, EXIT_USAGE);
      const dir = resolve(flags.dir);
      await mkdir(join(dir, 'logs'), { recursive: true, mode: 0o700 });
      await refuseIfRunning(dir);
      const progress = new Progress();
      process.stdout.write(`mycel up: a local mesh in ${relative(process.cwd(), dir) || '.'}${flags.demo ? ' with the demo app' : ''}\n`);

      // Signals that arrive while starting are remembered and honoured once the step in progress ends.
      let stopRequested: string | null = null;
      let wake = () => {};
      const onSignal = (sig: string) => {
        if (stopRequested !== null) {
          process.stdout.write('\nsecond signal: exiting now (children notice and exit on their own)\n');
          process.exit(EXIT_FAILURE);
        }
        stopRequested = sig;
        wake();
      };
      for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => onSignal(sig));

      let control: MycelChild;
      try {
        control = await progress.step(
          'control plane ready',
          () => startMycelChild({ name: 'the control plane', args: ['control', '--store', `file:${dir}`, '--state-dir', dir, '--listen', flags.listen], readyLine: CONTROL_READY, logFile: join(dir, 'logs', 'control.log'), timeoutMs: 30_000 }),
          (c) => `${c.ready[1]} (file store in ${relative(process.cwd(), dir) || '.'})`,
        );
      } catch (err) {
        throw new CliError(err instanceof ChildStartError ? `${err.message}\n  fix: run \`mycel check\`; if the port is taken, pass another --listen` : (err as Error).message, EXIT_FAILURE);
      }
      const url = control.ready[1] as string;
      const client = controlClient({ control: url, token: join(dir, 'admin-token') });
      let demo: RunningDemo | null = null;
      let failure: Error | null = null;
      try {
        if (flags.demo && stopRequested === null) {
          const files = await demoResourceFiles();
          await progress.step('demo resources applied', async () => applyFiles(client, await Promise.all(files.map(async (f) => ({ name: relative(process.cwd(), f), text: await readFile(f, 'utf8') }))), false), (r) => `${r.length} resources from ${files.length} files`);
          if (stopRequested === null) demo = await startDemo({ stateDir: dir, mesh: meshAccess(client), progress, graceMs });
        }
      } catch (err) {
        failure = err as Error;
      }

      if (failure === null && stopRequested === null) {
        await writeFile(join(dir, 'up.json'), JSON.stringify({ pid: process.pid, control: { url, pid: control.pid }, members: demo?.members.map((m) => ({ instance: m.demo.instance, service: m.demo.service, appPort: m.appPort, ...m.member.addresses, sidecarPid: m.member.sidecar.pid, watchdogPid: m.app.pid })) ?? [] }, null, 2) + '\n');
        process.stdout.write(summary(dir, url, demo));
        if (flags.open) {
          // The mesh runs either way: a dashboard that cannot open is a warning, not a failure.
          await showDashboard(client, true, (s) => process.stdout.write(s)).catch((err: unknown) => progress.line('warn', `could not open the dashboard: ${(err as Error).message}`));
        }
        // Running: until a signal, or the control plane goes away (nothing works without it).
        await new Promise<void>((resolveWait) => {
          wake = resolveWait;
          void control.exited.then((code) => {
            if (stopRequested !== null) return;
            failure ??= new Error(`the control plane exited (code ${code}); its log: ${control.logFile}`);
            resolveWait();
          });
          for (const m of demo?.members ?? []) {
            void m.member.sidecar.exited.then((code) => stopRequested === null && progress.line('warn', `the ${m.demo.instance} sidecar exited (code ${code})`, m.member.sidecar.logFile));
            void m.app.exited.then((code) => stopRequested === null && progress.line('warn', `the ${m.demo.instance} app exited (code ${code})`, m.member.appLogFile));
          }
        });
      }

      process.stdout.write(`\n${stopRequested ?? 'stopping'}: draining the apps, then the sidecars, then the control plane\n`);
      stopRequested ??= 'failure';
      if (demo !== null) await stopDemo(demo, progress);
      await progress.step('control plane stopped', () => control.stop(10_000));
      await rm(join(dir, 'up.json'), { force: true });
      if (failure !== null) throw new CliError(failure.message, failure instanceof CliError ? failure.exitCode : EXIT_FAILURE);
      process.stdout.write('stopped.\n');
      process.exitCode = EXIT_OK;
      // Nothing of this process should linger once its children are gone.
      process.exit(EXIT_OK);
    });
}
