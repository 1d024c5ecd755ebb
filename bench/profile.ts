// Where a sidecar's time goes: two real sidecars in front of the benchmark's nginx upstream, a fixed number of
// HTTP/1.1 requests from h2load, and per sidecar the CPU microseconds per request (user and system, from /proc),
// optionally with a V8 CPU profile (--cpu-prof) summarised by module. Run: node dist/bench/profile.js [--profile].

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { startTwoSidecars } from '../test/helpers/sidecars.js';
import { preloadWorkers } from './lib/loadgen.js';
import { installCleanup, stopAll } from './lib/processes.js';
import { startUpstream } from './peers/upstream.js';

interface Args {
  requests: number;
  rounds: number;
  transport: 'h1' | 'h2';
  profile: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { requests: 30_000, rounds: 3, transport: 'h1', profile: false };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    if (v === '--requests') a.requests = Number(argv[++i]);
    else if (v === '--rounds') a.rounds = Number(argv[++i]);
    else if (v === '--transport') a.transport = argv[++i] === 'h2' ? 'h2' : 'h1';
    else if (v === '--profile') a.profile = true;
    else throw new Error(`unknown flag ${v}; flags: --requests N --rounds N --transport h1|h2 --profile`);
  }
  return a;
}

/** utime and stime of a process in clock ticks (fields 14 and 15 of /proc/PID/stat). */
function cpuTicks(pid: number): { user: number; sys: number } {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return { user: Number(f[11]), sys: Number(f[12]) };
}

/** Self time of a V8 CPU profile grouped by where the code lives (Mycel module, Node internals, native). */
function summarise(file: string): string[] {
  const p = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Array<{ id: number; callFrame: { functionName: string; url: string } }>; samples: number[]; timeDeltas: number[] };
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const cat = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  p.samples.forEach((id, i) => {
    const f = byId.get(id)!.callFrame;
    const t = p.timeDeltas[i] ?? 0;
    if (f.functionName === '(idle)') {
      idle += t;
      return;
    }
    busy += t;
    const k = !f.url ? `native ${f.functionName}` : f.url.includes('/dist/src/') ? `mycel ${f.url.split('/dist/src/')[1]}` : f.url.startsWith('node:') ? `node ${f.url.slice(5).replace('internal/', '').split('/')[0]}` : `other ${f.url.split('/').slice(-2).join('/')}`;
    cat.set(k, (cat.get(k) ?? 0) + t);
  });
  const out = [`  busy ${((100 * busy) / (busy + idle)).toFixed(0)}% of the run; self time by place:`];
  for (const [k, t] of [...cat].sort((x, y) => y[1] - x[1]).slice(0, 15)) out.push(`  ${((100 * t) / busy).toFixed(1).padStart(5)}%  ${k}`);
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  installCleanup();
  preloadWorkers(['node-worker']);
  const tmp = mkdtempSync(join(tmpdir(), 'mycel-profile-'));
  const profDir = join(tmp, 'prof');
  const upstream = await startUpstream(tmp, null);
  const mesh = await startTwoSidecars({
    apiAppPort: upstream.ports.http1,
    apiProtocol: 'http',
    transportHttp1: args.transport,
    nodeArgs: args.profile ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [],
  });
  try {
    const url = `http://${mesh.web.outbound}/small`;
    const load = (n: number) => spawnSync('h2load', ['--h1', '-n', String(n), '-c', '32', '-H', ':authority: api', url], { encoding: 'utf8' }).stdout;
    load(3000); // warm-up: JIT and pools
    const hz = 100;
    for (let r = 1; r <= args.rounds; r++) {
      const before = [mesh.web, mesh.api].map((s) => cpuTicks(s.proc.pid!));
      const out = load(args.requests);
      const after = [mesh.web, mesh.api].map((s) => cpuTicks(s.proc.pid!));
      const rps = /finished in [\d.]+s, ([\d.]+) req\/s/.exec(out)?.[1] ?? '?';
      const ok = /(\d+) succeeded/.exec(out)?.[1] ?? '?';
      const us = (i: number, k: 'user' | 'sys') => (((after[i]![k] - before[i]![k]) / hz) * 1e6) / args.requests;
      console.log(
        `round ${r}: ${rps} req/s, ${ok}/${args.requests} ok | cpu µs per request: web ${us(0, 'user').toFixed(1)} user + ${us(0, 'sys').toFixed(1)} sys, api ${us(1, 'user').toFixed(1)} user + ${us(1, 'sys').toFixed(1)} sys, both ${(us(0, 'user') + us(0, 'sys') + us(1, 'user') + us(1, 'sys')).toFixed(1)}`,
      );
    }
  } finally {
    await Promise.all([mesh.web.stop('SIGTERM'), mesh.api.stop('SIGTERM')]);
    await mesh.close();
    await upstream.stop();
    await stopAll();
  }
  if (args.profile) {
    for (const f of readdirSync(profDir)) {
      console.log(`profile ${f}:`);
      for (const line of summarise(join(profDir, f))) console.log(line);
    }
  }
  rmSync(tmp, { recursive: true, force: true });
}

await main();
