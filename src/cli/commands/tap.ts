// `mycel tap SERVICE`: the live request stream of a service from the control plane (GET /api/v1/tap), one aligned line
// per request (or its JSON with -o json), until Ctrl-C or --limit events.

import type { Command } from 'commander';
import type { TapEvent } from '../../api/v1alpha1/stream-messages.js';
import { apiError, controlClient, type ClientFlags } from '../control-client.js';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from '../exit.js';

interface TapFlags extends ClientFlags {
  path?: string;
  method?: string;
  status?: string;
  direction?: string;
  limit?: string;
  output?: string;
}

const COLUMNS: Array<[string, number]> = [['TIME', 12], ['DIR', 3], ['SOURCE -> DESTINATION', 24], ['METHOD', 6], ['PATH', 24], ['STATUS', 6], ['LATENCY', 9], ['ROUTE', 22], ['RETRIES', 7], ['ERROR', 0]];

function row(cells: string[]): string {
  return cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(COLUMNS[i]![1]))).join(' ').trimEnd() + '\n';
}

export function tapHeader(): string {
  return row(COLUMNS.map(([h]) => h));
}

/** One event as an aligned line; control characters in request text come out escaped so a line stays one line. */
export function formatTapLine(ev: TapEvent): string {
  const clean = (s: string) => (/[\u0000-\u001f\u007f]/.test(s) ? JSON.stringify(s).slice(1, -1) : s);
  const t = new Date(ev.time);
  const time = `${String(t.getHours()).padStart(2, '0')}:${String(t.getMinutes()).padStart(2, '0')}:${String(t.getSeconds()).padStart(2, '0')}.${String(t.getMilliseconds()).padStart(3, '0')}`;
  const status = ev.grpcStatus !== null && ev.grpcStatus !== '0' ? `${ev.status}/g${ev.grpcStatus}` : String(ev.status);
  return row([
    time,
    ev.direction === 'inbound' ? 'in' : 'out',
    `${ev.sourceService ?? 'unknown'} -> ${ev.destinationService ?? 'unknown'}`,
    clean(ev.method),
    clean(ev.path),
    status,
    `${ev.latencyMs.toFixed(1)}ms`,
    ev.route ?? '-',
    String(ev.retries),
    ev.error ?? '',
  ]);
}

async function tap(service: string, flags: TapFlags): Promise<void> {
  const q = new URLSearchParams({ service });
  for (const k of ['path', 'method', 'status', 'direction', 'limit'] as const) if (flags[k] !== undefined) q.set(k, flags[k]);
  const limit = flags.limit === undefined ? 0 : Number(flags.limit);
  if (!Number.isInteger(limit) || limit < 0) throw new CliError('--limit must be a whole number', EXIT_USAGE);
  const json = flags.output === 'json';
  if (flags.output !== undefined && !json) throw new CliError(`unknown output format "${flags.output}": use json`, EXIT_USAGE);
  const client = controlClient(flags);
  const abort = new AbortController();
  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
    abort.abort();
  };
  process.once('SIGINT', onSigint);
  process.once('SIGTERM', onSigint);
  try {
    const { status, body } = await client.stream(`/api/v1/tap?${q}`, abort.signal);
    if (status !== 200) {
      let text = '';
      for await (const c of body) if (text.length < 4096) text += c.toString('utf8');
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* keep the text */
      }
      throw apiError(status, parsed, `tap ${service}`);
    }
    if (!json) process.stdout.write(tapHeader());
    process.stderr.write(`tapping ${service} at ${client.url} (Ctrl-C to stop)\n`);
    let seen = 0;
    let rest = '';
    for await (const chunk of body) {
      const lines = (rest + chunk.toString('utf8')).split('\n');
      rest = lines.pop() ?? '';
      for (const line of lines) {
        if (line.length === 0) continue;
        const ev = JSON.parse(line) as TapEvent & { dropped?: number; message?: string };
        if (ev.dropped !== undefined) {
          process.stderr.write(`mycel: ${ev.message ?? `${ev.dropped} events dropped`}\n`);
          continue;
        }
        process.stdout.write(json ? line + '\n' : formatTapLine(ev));
        if (limit > 0 && ++seen >= limit) return;
      }
    }
    if (limit > 0 && seen >= limit) return;
    throw new CliError(`the control plane at ${client.url} ended the tap stream; run mycel tap again once it is back`, EXIT_FAILURE);
  } catch (err) {
    if (interrupted) return;
    throw err;
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
    abort.abort();
  }
}

export function registerTapCommand(program: Command): void {
  program
    .command('tap')
    .description('watch the live requests of a service (method, path, status, latency, identities, route, retries, error)')
    .argument('<service>', 'the service: its inbound requests and the calls to and from it')
    .option('--path <prefix>', 'only requests whose path starts with this')
    .option('--method <method>', 'only this HTTP method')
    .option('--status <code>', 'only this status (503) or class (5xx)')
    .option('--direction <dir>', 'inbound (measured at the service\'s sidecars) or outbound (at the callers)')
    .option('--limit <n>', 'stop after this many requests')
    .option('-o, --output <format>', 'json: one event per line, as the API streams it')
    .option('--control <url>', 'control-plane URL (default: MYCEL_CONTROL, .mycel/control.json, 127.0.0.1:7400)')
    .option('--token <file>', 'admin token file (default: MYCEL_TOKEN or .mycel/admin-token)')
    .option('--ca <file>', 'mesh root(s) to verify the control plane with (default: MYCEL_CA, or ca.pem in the state directory)')
    .action(async (service: string, flags: TapFlags) => tap(service, flags));
}
