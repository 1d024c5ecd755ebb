// The demo app of `mycel up --demo` (examples/demo/): which processes it has, and starting them in order through the
// `mycel run` machinery: every sidecar first, then the apps (dependencies before callers), the load generator last.

import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { AppProcess } from './app-process.js';
import { MeshMember, type MeshAccess } from './mesh-member.js';
import { DEMO_APPS, DEMO_RESOURCES } from './paths.js';
import { freePort, waitForListening } from './ports.js';
import type { Progress } from './progress.js';

export interface DemoProcess {
  /** Names the instance (its logs, its line in the summary): reviews has two. */
  instance: string;
  service: string;
  /** The compiled app under dist/examples/demo/. */
  script: string;
  labels?: Record<string, string>;
  upstreams?: string[];
  env?: Record<string, string>;
}

/** In start order: what an app calls is up before it. The load generator is last, once everything answers. */
export const DEMO: readonly DemoProcess[] = [
  { instance: 'ratings', service: 'ratings', script: 'ratings.js' },
  { instance: 'reviews-v1', service: 'reviews', script: 'reviews.js', labels: { version: 'v1' }, env: { VERSION: 'v1' } },
  { instance: 'reviews-v2', service: 'reviews', script: 'reviews.js', labels: { version: 'v2' }, env: { VERSION: 'v2' }, upstreams: ['ratings=127.0.0.1:0'] },
  { instance: 'catalog', service: 'catalog', script: 'catalog.js' },
  { instance: 'web', service: 'web', script: 'web.js', upstreams: ['catalog=127.0.0.1:0'] },
  { instance: 'loadgen', service: 'loadgen', script: 'loadgen.js' },
];
const LOADGEN = 'loadgen';

/** The demo's resource files, in the order applied (one unit, so the order only matters to the reader). */
export async function demoResourceFiles(): Promise<string[]> {
  return (await readdir(DEMO_RESOURCES)).filter((n) => /\.ya?ml$/.test(n)).sort().map((n) => join(DEMO_RESOURCES, n));
}

export interface RunningDemo {
  members: Array<{ demo: DemoProcess; member: MeshMember; appPort: number; app: AppProcess }>;
}

/** Starts the demo's sidecars, then its apps; on a failure stops what it started and rethrows. */
export async function startDemo(o: { stateDir: string; mesh: MeshAccess; progress: Progress; graceMs: number }): Promise<RunningDemo> {
  const { progress } = o;
  const members: Array<{ demo: DemoProcess; member: MeshMember; appPort: number }> = [];
  const running: RunningDemo = { members: [] };
  try {
    let ready = 0;
    await progress.step('sidecars ready', async () => {
      // All settle before going on, so that none is left starting behind a failure.
      const results = await Promise.allSettled(
        DEMO.map(async (demo) => {
          const appPort = await freePort();
          const member = await MeshMember.startSidecar({ service: demo.service, namespace: 'default', appPort, upstreams: demo.upstreams ?? [], labels: demo.labels ?? {}, stateDir: o.stateDir, mesh: o.mesh, instance: demo.instance });
          members.push({ demo, member, appPort });
          progress.update(`sidecars ready (${++ready}/${DEMO.length})`);
        }),
      );
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
    }, () => `${DEMO.length} of ${DEMO.length}`);
    members.sort((a, b) => DEMO.indexOf(a.demo) - DEMO.indexOf(b.demo));

    const startApps = async (list: typeof members) => {
      const started = list.map((m) => {
        const app = m.member.startApp({ command: process.execPath, args: [join(DEMO_APPS, m.demo.script)], env: { PORT: String(m.appPort), ...m.demo.env }, output: 'log', graceMs: o.graceMs });
        return app.then((a) => {
          running.members.push({ ...m, app: a });
          return { m, app: a };
        });
      });
      await Promise.all(
        started.map(async (p) => {
          const { m, app } = await p;
          let exited = false;
          void app.exited.then(() => (exited = true));
          if (!(await waitForListening(m.appPort, 20_000, () => exited))) {
            throw new Error(`the ${m.demo.instance} app ${exited ? 'exited' : 'did not listen'} on port ${m.appPort}; see ${m.member.appLogFile}`);
          }
        }),
      );
    };
    const apps = members.filter((m) => m.demo.instance !== LOADGEN);
    await progress.step('apps ready', () => startApps(apps), () => apps.map((m) => m.demo.instance).join(', '));
    await progress.step('load generator started', () => startApps(members.filter((m) => m.demo.instance === LOADGEN)), () => `${process.env.LOADGEN_RPS ?? 4} req/s to web through its own sidecar`);
  } catch (err) {
    // MeshMember.stop stops the app (if started) before its sidecar.
    await Promise.all(members.map((m) => m.member.stop()));
    throw err;
  }
  running.members.sort((a, b) => DEMO.indexOf(a.demo) - DEMO.indexOf(b.demo));
  return running;
}

/** Apps in reverse start order (the load generator first), then every sidecar at once. */
export async function stopDemo(demo: RunningDemo, progress: Progress): Promise<void> {
  await progress.step('apps stopped', async () => {
    for (const m of [...demo.members].reverse()) await m.app.stop();
  });
  await progress.step('sidecars drained', () => Promise.all(demo.members.map((m) => m.member.sidecar.stop(35_000))));
}
