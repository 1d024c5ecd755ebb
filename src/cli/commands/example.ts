// `mycel example`: the two-sidecar example on one machine: an "api" app with its sidecar, a "web" sidecar for the
// caller (you, with curl), throwaway certificates, and a clean drain of everything on Ctrl-C.

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { createApiApp } from '../../../examples/two-sidecars/api-app.js';
import { writeDevCertificates } from '../../security/dev-ca.js';
import { CliError, EXIT_FAILURE } from '../exit.js';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

interface Child {
  name: string;
  proc: ChildProcess;
  exited: Promise<number | null>;
}

function startProxy(name: string, args: string[], logFile: string): Promise<Child> {
  // Own process group: a terminal's Ctrl-C reaches only this command, which then stops the sidecars in order.
  const proc = spawn(process.execPath, [join(ROOT, 'bin', 'mycel.js'), 'proxy', ...args], { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, MYCEL_EXIT_WITH_PARENT: '1' } });
  const log = createWriteStream(logFile, { flags: 'a' });
  proc.stderr!.pipe(log);
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return new Promise((resolveStart, rejectStart) => {
    let out = '';
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes(' ready: ')) resolveStart({ name, proc, exited });
    });
    void exited.then(async (code) => {
      const tail = (await readFile(logFile, 'utf8').catch(() => '')).split('\n').slice(-6).join('\n');
      rejectStart(new CliError(`the ${name} sidecar exited with code ${code} before it was ready; its log (${logFile}) ends with:\n${tail}`, EXIT_FAILURE));
    });
  });
}

export function registerExampleCommand(program: Command): void {
  program
    .command('example')
    .description('run the two-sidecar example: an api app behind its sidecar, and a web sidecar for your curl')
    .option('--dir <dir>', 'where certificates, config and logs go', '.mycel/example')
    .action(async (flags: { dir: string }) => {
      const dir = resolve(flags.dir);
      const say = (s: string) => process.stdout.write(s + '\n');
      await mkdir(dir, { recursive: true });
      say(`[1/4] certificates: a development CA and SPIFFE certificates for web and api in ${join(dir, 'certs')}`);
      await writeDevCertificates(join(dir, 'certs'), { services: ['web', 'api'] });

      const app = createApiApp();
      await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
      const appPort = (app.address() as AddressInfo).port;
      say(`[2/4] api app: listening on 127.0.0.1:${appPort} (plain HTTP; it knows nothing of the mesh)`);

      const tmpl = await readFile(join(ROOT, 'examples', 'two-sidecars', 'mesh.yaml.tmpl'), 'utf8');
      const config = join(dir, 'mesh.yaml');
      await writeFile(config, tmpl.replaceAll('API_INBOUND_PORT', '15006'));
      const cert = (svc: string) => ['--cert', join(dir, 'certs', `${svc}.crt`), '--key', join(dir, 'certs', `${svc}.key`), '--ca', join(dir, 'certs', 'ca.crt')];
      const children: Child[] = [];
      const stopAll = async () => {
        // The caller's side first, then the server side, so that nothing in flight loses its destination.
        for (const c of [...children].reverse()) {
          c.proc.kill('SIGTERM');
          await c.exited;
        }
        await new Promise<void>((r) => app.close(() => r()));
      };
      try {
        say('[3/4] api sidecar: inbound mTLS on 127.0.0.1:15006, forwarding to the app');
        children.push(await startProxy('api', ['--service', 'api', '--app-port', String(appPort), '--config', config, '--inbound', '127.0.0.1:15006', '--outbound', '127.0.0.1:15101', '--admin', '127.0.0.1:15100', ...cert('api')], join(dir, 'api-sidecar.log')));
        say('[4/4] web sidecar: outbound on 127.0.0.1:15001, upstream binding api on 127.0.0.1:9191');
        children.push(await startProxy('web', ['--service', 'web', '--app-port', '3000', '--config', config, '--inbound', '127.0.0.1:15106', '--outbound', '127.0.0.1:15001', '--admin', '127.0.0.1:15000', '--upstream', 'api=127.0.0.1:9191', ...cert('web')], join(dir, 'web-sidecar.log')));
      } catch (err) {
        await stopAll();
        throw err;
      }
      say(`
Mycel example running: web sidecar -> mTLS -> api sidecar -> api app. Try:
  curl -H 'Host: api' http://127.0.0.1:15001/hello              # Host-header routing
  curl -x http://127.0.0.1:15001 http://api/whoami               # as an HTTP proxy: the app sees the caller's SPIFFE ID
  curl http://127.0.0.1:9191/hello                               # the upstream binding for api
  curl -H 'Host: nope' http://127.0.0.1:15001/                   # a mesh error explains itself (x-mycel-error)
  curl http://127.0.0.1:15000/metrics                            # the web sidecar's metrics (also /config, /ready)
Config: ${config} (edit it: the sidecars reload it live). Logs: ${join(dir, 'web-sidecar.log')}, ${join(dir, 'api-sidecar.log')}
Ctrl-C drains and stops everything.`);

      await new Promise<void>((resolveRun, rejectRun) => {
        let stopping = false;
        const stop = () => {
          if (stopping) return;
          stopping = true;
          say('\ndraining: web sidecar, then api sidecar, then the app ...');
          void stopAll().then(() => {
            say('stopped.');
            resolveRun();
          });
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
        for (const c of children) {
          void c.exited.then((code) => {
            if (stopping) return;
            stopping = true;
            void stopAll().then(() => rejectRun(new CliError(`the ${c.name} sidecar stopped unexpectedly (exit code ${code}); see its log in ${dir}`, EXIT_FAILURE)));
          });
        }
      });
    });
}
