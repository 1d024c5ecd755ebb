// What every benchmark report says about the machine it ran on: CPUs, kernel, Node, the 1-minute load average at
// the start and the end of the run (other work on the machine shows up there), and which tools and peers it has.
import { execFileSync } from 'node:child_process';
import { cpus, loadavg, release } from 'node:os';

export interface MachineInfo {
  cpus: number;
  cpu_model: string;
  kernel: string;
  node: string;
  loadavg_start: number;
  loadavg_end: number;
}

/** The 1-minute load average now, rounded for the report. */
export function loadNow(): number {
  return Math.round((loadavg()[0] ?? 0) * 100) / 100;
}

/** The machine at the end of a run that started with load average `loadAtStart` (from loadNow()). */
export function machineInfo(loadAtStart: number): MachineInfo {
  return {
    cpus: cpus().length,
    cpu_model: cpus()[0]?.model.trim() ?? 'unknown',
    kernel: release(),
    node: process.version,
    loadavg_start: loadAtStart,
    loadavg_end: loadNow(),
  };
}

/** Whether a command is on the PATH. */
export function have(tool: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function versionLine(cmd: string, pattern: RegExp, fallback: string): string {
  try {
    const out = execFileSync('sh', ['-c', `${cmd} 2>&1`], { encoding: 'utf8' });
    return pattern.exec(out)?.[1] ?? fallback;
  } catch {
    return fallback;
  }
}

/** The versions of the peers the benchmarks compare against, for the reports. */
export function peerVersions(): { nginx: string; haproxy: string } {
  return {
    nginx: versionLine('nginx -v', /nginx version: (\S+)/, 'nginx (unknown version)'),
    haproxy: versionLine('haproxy -v', /HAProxy version (\S+)/, 'unknown').replace(/^(?!HAProxy)/, 'HAProxy '),
  };
}
