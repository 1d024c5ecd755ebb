// `mycel apply -f FILE|DIR|-`: validates resource files locally (file:line:column), sends them to the control plane as
// one unit, and prints created / configured / unchanged per object; any problem rejects the whole set (exit 2).

import type { Command } from 'commander';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { crossCheck, formatProblem, parsePath, parseResources, type ConfigProblem, type LoadedResource } from '../../api/v1alpha1/load.js';
import { apiError, controlClient, type ClientFlags, type ControlClient } from '../control-client.js';
import { CliError, EXIT_USAGE } from '../exit.js';

interface ApplyFlags extends ClientFlags {
  filename: string[];
  dryRun?: boolean;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Files named by -f: a file, every .yaml/.yml/.json file of a directory (sorted), or stdin. */
async function expand(paths: readonly string[]): Promise<Array<{ name: string; text: string }>> {
  const out: Array<{ name: string; text: string }> = [];
  for (const p of paths) {
    if (p === '-') {
      out.push({ name: '<stdin>', text: await readStdin() });
      continue;
    }
    let s;
    try {
      s = await stat(p);
    } catch {
      throw new CliError(`cannot read ${p}: no such file or directory`, EXIT_USAGE);
    }
    if (s.isDirectory()) {
      const names = (await readdir(p)).filter((n) => /\.(ya?ml|json)$/.test(n)).sort();
      for (const n of names) out.push({ name: join(p, n), text: await readFile(join(p, n), 'utf8') });
    } else {
      out.push({ name: p, text: await readFile(p, 'utf8') });
    }
  }
  return out;
}

function fail(problems: ConfigProblem[]): never {
  throw new CliError(`invalid config, nothing was applied:\n${problems.map(formatProblem).join('\n')}`, EXIT_USAGE);
}

export function registerApplyCommand(program: Command): void {
  program
    .command('apply')
    .description('create or update resources in the control plane (as one unit: all or nothing)')
    .requiredOption('-f, --filename <path...>', 'a YAML/JSON file, a directory of them, or - for stdin')
    .option('--dry-run', 'validate against the control plane without storing')
    .option('--control <url>', 'control-plane URL (default: MYCEL_CONTROL, .mycel/control.json, 127.0.0.1:7400)')
    .option('--token <file>', 'admin token file (default: MYCEL_TOKEN or .mycel/admin-token)')
    .option('--ca <file>', 'mesh root(s) to verify the control plane with (default: MYCEL_CA, or ca.pem in the state directory)')
    .action(async (flags: ApplyFlags) => {
      const results = await applyFiles(controlClient(flags), await expand(flags.filename), flags.dryRun === true);
      for (const r of results) process.stdout.write(`${r.kind.toLowerCase()}/${r.name}${r.namespace !== 'default' ? ` -n ${r.namespace}` : ''} ${r.action}${flags.dryRun ? ' (dry run)' : ''}\n`);
    });
}

export interface ApplyResult {
  kind: string;
  namespace: string;
  name: string;
  action: string;
}

/** Validates resource files locally, sends them as one unit, and returns what happened to each object; CliError otherwise. */
export async function applyFiles(client: ControlClient, files: ReadonlyArray<{ name: string; text: string }>, dryRun: boolean): Promise<ApplyResult[]> {
  const loaded: LoadedResource[] = [];
  const problems: ConfigProblem[] = [];
  for (const f of files) {
    const r = parseResources(f.text, f.name);
    if (r.ok) loaded.push(...r.resources);
    else problems.push(...r.problems);
  }
  // References to what the control plane already stores are checked there (problems come back below).
  if (problems.length === 0) problems.push(...crossCheck(loaded, { partial: true }));
  if (problems.length > 0) fail(problems);
  if (loaded.length === 0) throw new CliError('no resources found in the given files', EXIT_USAGE);

  const { status, body } = await client.request<{ results?: ApplyResult[]; problems?: Array<{ index: number; path: string; message: string }>; revision?: number }>(
    'POST',
    '/api/v1/apply',
    { resources: loaded.map((l) => l.resource), dryRun },
  );
  if (status === 422 && body.problems) {
    // Problems found against the stored state (e.g. a backendRef to a service that does not exist): point into the files.
    fail(body.problems.map((p) => {
      const at = loaded[p.index];
      const pos = at === undefined ? { file: '<request>', line: 1, column: 1 } : at.locate(parsePath(p.path));
      return { ...pos, path: p.path, message: p.message };
    }));
  }
  if (status !== 200 || !body.results) throw apiError(status, body, 'apply');
  return body.results;
}
