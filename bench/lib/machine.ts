// What every benchmark report says about the machine it ran on: CPUs, kernel, Node, and the 1-minute load average at
// the start and the end of the run (other work on the machine shows up there).
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
