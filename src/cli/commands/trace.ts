// `mycel trace [ID]`: the control plane's recent traces as a table, or one trace as a waterfall in the terminal.

import type { Command } from 'commander';
import { apiError, controlClient, type ClientFlags } from '../control-client.js';
import { CliError, EXIT_USAGE } from '../exit.js';
import { renderTraceList, renderWaterfall, type TraceListItem, type WaterfallSpan } from '../trace-waterfall.js';

interface TraceFlags extends ClientFlags {
  service?: string;
  limit: string;
  output?: string;
}

async function traceCommand(id: string | undefined, flags: TraceFlags): Promise<void> {
  if (flags.output !== undefined && flags.output !== 'json') throw new CliError(`unknown output format "${flags.output}": use json`, EXIT_USAGE);
  const client = controlClient(flags);
  if (id === undefined) {
    const limit = Number(flags.limit);
    if (!Number.isInteger(limit) || limit < 1) throw new CliError(`--limit expects a positive integer, not "${flags.limit}"`, EXIT_USAGE);
    const q = new URLSearchParams({ limit: String(limit), ...(flags.service !== undefined ? { service: flags.service } : {}) });
    const { status, body } = await client.request<{ traces: TraceListItem[] }>('GET', `/api/v1/traces?${q}`);
    if (status !== 200) throw apiError(status, body, 'listing traces');
    process.stdout.write(flags.output === 'json' ? JSON.stringify(body, null, 2) + '\n' : renderTraceList(body.traces));
    return;
  }
  if (!/^[0-9a-fA-F]{32}$/.test(id)) throw new CliError(`"${id}" is not a trace id (32 hex digits); run \`mycel trace\` to list recent ones`, EXIT_USAGE);
  const { status, body } = await client.request<{ traceId: string; spans: WaterfallSpan[] }>('GET', `/api/v1/traces/${id.toLowerCase()}`);
  if (status === 404) throw new CliError(`trace ${id} is not in the control plane's recent traces (it keeps a bounded number); run \`mycel trace\` to list them`);
  if (status !== 200) throw apiError(status, body, `getting trace ${id}`);
  const width = Math.max(20, Math.min(80, (process.stdout.columns ?? 120) - 80));
  process.stdout.write(flags.output === 'json' ? JSON.stringify(body, null, 2) + '\n' : renderWaterfall(body.traceId, body.spans, width));
}

export function registerTraceCommand(program: Command): void {
  program
    .command('trace')
    .description('recent traces, or one trace as a waterfall')
    .argument('[id]', 'a trace id: show that trace as a waterfall')
    .option('--service <name>', 'only traces that pass through this service')
    .option('--limit <n>', 'how many traces to list', '20')
    .option('-o, --output <format>', 'json')
    .option('--control <url>', 'control-plane URL (default: MYCEL_CONTROL, .mycel/control.json, 127.0.0.1:7400)')
    .option('--token <file>', 'admin token file (default: MYCEL_TOKEN or .mycel/admin-token)')
    .option('--ca <file>', 'mesh root(s) to verify the control plane with (default: MYCEL_CA, or ca.pem in the state directory)')
    .action((id: string | undefined, flags: TraceFlags) => traceCommand(id, flags));
}
