// `mycel stat [SERVICE] [--window 60s] [-o json]`: the golden signals the control plane collected from the proxies
// (GET /api/v1/stats): rps, success rate and p50/p95/p99 per service; with SERVICE also its routes and its edges.

import type { Command } from 'commander';
import { parseDuration } from '../../api/v1alpha1/duration.js';
import { apiError, controlClient, table, type ClientFlags } from '../control-client.js';
import { CliError, EXIT_USAGE } from '../exit.js';
import type { Signals, StatsReport } from '../../control-plane/stats/stats-report.js';

interface StatFlags extends ClientFlags {
  window: string;
  output?: string;
}

type StatsBody = StatsReport;

const SIGNAL_HEADER = ['RPS', 'SUCCESS', 'P50', 'P95', 'P99', 'REQUESTS'];

function ms(v: number | null): string {
  if (v === null) return '-';
  return v < 10 ? `${v.toFixed(2)}ms` : v < 1000 ? `${Math.round(v)}ms` : `${(v / 1000).toFixed(2)}s`;
}

function cells(s: Signals): string[] {
  return [s.rps.toFixed(2), s.successRate === null ? '-' : `${(s.successRate * 100).toFixed(2)}%`, ms(s.p50Ms), ms(s.p95Ms), ms(s.p99Ms), String(s.requests)];
}

/** The three tables as text; only the one service's rows (and a note when it had no traffic) when `service` is set. */
export function formatStats(body: StatsBody, service: string | undefined): string {
  const services = service === undefined ? body.services : body.services.filter((s) => s.service === service);
  let out = table(['SERVICE', ...SIGNAL_HEADER], services.map((s) => [s.namespace === 'default' ? s.service : `${s.namespace}/${s.service}`, ...cells(s)]));
  if (service === undefined) return out;
  const routes = body.routes.filter((r) => r.service === service);
  if (routes.length > 0) out += '\n' + table(['ROUTE', ...SIGNAL_HEADER], routes.map((r) => [r.route, ...cells(r)]));
  const inbound = body.edges.filter((e) => e.destination === service);
  if (inbound.length > 0) out += '\n' + table(['FROM', ...SIGNAL_HEADER], inbound.map((e) => [e.source, ...cells(e)]));
  const outbound = body.edges.filter((e) => e.source === service);
  if (outbound.length > 0) out += '\n' + table(['TO', ...SIGNAL_HEADER], outbound.map((e) => [e.destination, ...cells(e)]));
  return out;
}

export function registerStatCommand(program: Command): void {
  program
    .command('stat')
    .description('golden signals per service (rps, success rate, p50/p95/p99); with SERVICE also its routes and edges')
    .argument('[service]', 'one service: adds its routes, its callers (FROM) and what it calls (TO)')
    .option('--window <duration>', 'how far back to look (at most 10m)', '60s')
    .option('-o, --output <format>', 'json')
    .option('--control <url>', 'control-plane URL (default: MYCEL_CONTROL, .mycel/control.json, 127.0.0.1:7400)')
    .option('--token <file>', 'admin token file (default: MYCEL_TOKEN or .mycel/admin-token)')
    .option('--ca <file>', 'mesh root(s) to verify the control plane with (default: MYCEL_CA, or ca.pem in the state directory)')
    .action(async (service: string | undefined, flags: StatFlags) => {
      const windowMs = parseDuration(flags.window);
      if (windowMs === undefined || windowMs < 1000 || windowMs > 600_000) throw new CliError(`invalid --window "${flags.window}": expected a duration from 1s to 10m, e.g. 60s`, EXIT_USAGE);
      if (flags.output !== undefined && flags.output !== 'json') throw new CliError(`unknown output format "${flags.output}": use json`, EXIT_USAGE);
      const { status, body } = await controlClient(flags).request<StatsBody>('GET', `/api/v1/stats?window=${Math.round(windowMs / 1000)}`);
      if (status !== 200) throw apiError(status, body, 'stat');
      if (flags.output === 'json') {
        process.stdout.write(JSON.stringify(service === undefined ? body : narrow(body, service), null, 2) + '\n');
        return;
      }
      if (service !== undefined && !body.services.some((s) => s.service === service) && !body.edges.some((e) => e.destination === service || e.source === service)) {
        throw new CliError(`no service "${service}" has a connected proxy or traffic in the last ${body.windowSeconds}s`);
      }
      process.stdout.write(formatStats(body, service));
      if (body.services.length === 0) process.stdout.write('(no proxy has reported yet; summaries arrive every 10 s)\n');
    });
}

/** The JSON of one service: its row, its routes and the edges it is on. */
function narrow(body: StatsBody, service: string): unknown {
  return {
    ...body,
    services: body.services.filter((s) => s.service === service),
    routes: body.routes.filter((r) => r.service === service),
    edges: body.edges.filter((e) => e.source === service || e.destination === service),
    timeline: body.timeline.filter((t) => t.service === service),
  };
}
