// The ledger of a chaos test: a steady-rate load generator (GET and POST, each with a unique id, bodies with a length
// and a SHA-256 the other side checks), the app that records every request it executed, and the verdict afterwards:
// every request succeeded or failed with a mesh error (x-mycel-error) inside its deadline, nothing was lost or
// truncated, no POST ran twice, and how long after a mark (a heal, a kill) failures went on.

import { createHash } from 'node:crypto';
import http from 'node:http';
import type { Readable } from 'node:stream';

/**
 * The app side, run with `node FILE` inside a host: listens on PORT, answers GET/POST /ledger?id=&size= with `size`
 * bytes and their length and digest in headers, checks a POST body against its headers, answers /healthz, and prints
 * one line per executed request on stdout: `X <name> <method> <id> ok|truncated`. HOST (default 0.0.0.0) and PORT
 * (0: any) say where; the ready line ends with the port.
 */
export const LEDGER_APP = `
const http = require('node:http');
const { createHash } = require('node:crypto');
const { NAME, PORT } = process.env;
const sha = (b) => createHash('sha256').update(b).digest('hex');
const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/healthz') return res.end('ok');
  const id = url.searchParams.get('id') ?? '-';
  const size = Math.min(Number(url.searchParams.get('size') ?? '0') | 0, 1 << 20);
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks);
    const whole = req.method !== 'POST' || (String(body.length) === req.headers['x-ledger-length'] && sha(body) === req.headers['x-ledger-sha256']);
    process.stdout.write('X ' + NAME + ' ' + req.method + ' ' + id + ' ' + (whole ? 'ok' : 'truncated') + '\\n');
    if (!whole) { res.statusCode = 422; return res.end('truncated request body'); }
    const out = Buffer.alloc(size, id + ';');
    res.setHeader('x-ledger-length', String(out.length));
    res.setHeader('x-ledger-sha256', sha(out));
    res.setHeader('x-ledger-served-by', NAME);
    res.end(out);
  });
});
server.listen(Number(PORT), process.env.HOST ?? '0.0.0.0', () => console.log('ledger app ready ' + server.address().port));
`;

export interface LoadOptions {
  /** host:port the requests go to (a sidecar's upstream binding). */
  target: string;
  /** Requests per second (steady: request i is sent at start + i / rate). */
  rate: number;
  /** A request not finished within this is lost (the mesh's own timeouts must answer before). */
  deadlineMs: number;
  /** The load stops by itself after this long at the latest. */
  maxDurationMs: number;
  /** Response and POST body sizes cycle through these (bytes). */
  sizes?: number[];
  /** Requests waiting for an answer at most; beyond, a tick is skipped (counted, not sent). */
  maxInFlight?: number;
}

type Outcome = 'ok' | 'failed' | 'lost';

interface Entry {
  id: string;
  method: string;
  start: number;
  end: number;
  outcome: Outcome;
  /** Mesh error reason for 'failed'; what went wrong for 'lost'. */
  reason: string;
  /** The whole x-mycel-error value and status of a 'failed' one. */
  detail?: string;
}

export interface LedgerReport {
  scenario: string;
  sent: number;
  ok: number;
  failed: number;
  byReason: Record<string, number>;
  lost: number;
  /** A few lost requests with why, for the failure message. */
  lostSamples: string[];
  /** Every lost request: id and why (a test may check a cut against what the sidecar logged). */
  lostRequests: Array<{ id: string; reason: string }>;
  /** A few failed requests with their status and whole x-mycel-error. */
  failedSamples: string[];
  /** Failed requests per method (GETs may be retried, POSTs only when they never reached the app). */
  failedByMethod: Record<string, number>;
  skipped: number;
  /** POST ids executed more than once (by any app). */
  duplicated: string[];
  /** Requests that reached an app with a cut-off body. */
  truncated: string[];
  /** POSTs the client saw succeed that no app executed exactly once. */
  unexecutedOk: string[];
  /** From the mark to the end of the last failure; null without a mark. */
  convergeMs: number | null;
  /** Requests executed per app name. */
  servedBy: Record<string, number>;
}

const MESH_REASON = /^([a-z][a-z0-9-]*)/;

export class Ledger {
  private readonly entries: Entry[] = [];
  private readonly executions = new Map<string, number>();
  private readonly truncated: string[] = [];
  private readonly servedBy: Record<string, number> = {};
  private readonly executedAt = new Map<string, string[]>();
  private markAt: number | null = null;
  private skipped = 0;
  private sent = 0;
  private inFlight = 0;
  private stopped = false;
  private running: Promise<void> | null = null;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

  constructor(readonly scenario: string) {}

  /**
   * Reads an app's stdout for its execution lines: those of this ledger's requests (its ids), so that ledgers of
   * successive phases can watch the same app.
   */
  watchApp(stdout: Readable): void {
    let buf = '';
    stdout.setEncoding('utf8');
    stdout.on('data', (d: string) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const m = /^X (\S+) (\S+) (\S+) (ok|truncated)$/.exec(line);
        if (m === null) continue;
        const [, name, method, id, state] = m as unknown as [string, string, string, string, string];
        if (!this.ownId(id)) continue;
        this.servedBy[name] = (this.servedBy[name] ?? 0) + 1;
        if (state === 'truncated') this.truncated.push(id);
        if (method === 'POST') this.executions.set(id, (this.executions.get(id) ?? 0) + 1);
        let at = this.executedAt.get(name);
        if (at === undefined) this.executedAt.set(name, (at = []));
        at.push(id);
      }
    });
  }

  /** Ids are `<scenario>-<n>`. */
  private ownId(id: string): boolean {
    return id.length > this.scenario.length + 1 && id.startsWith(this.scenario) && id[this.scenario.length] === '-' && /^\d+$/.test(id.slice(this.scenario.length + 1));
  }

  /** Ids an app (by name) executed so far, in order. */
  executedBy(name: string): readonly string[] {
    return this.executedAt.get(name) ?? [];
  }

  /** The instant convergence is measured from (a heal, a kill); now by default. */
  mark(at = Date.now()): void {
    this.markAt = at;
  }

  /** Starts the load in the background; stop() ends it. */
  start(o: LoadOptions): void {
    if (this.running !== null) throw new Error('the load is already running');
    this.running = this.loop(o);
  }

  /** Waits until the load has sent all it would (maxDurationMs) and every answer is in; then stop() returns at once. */
  async finished(): Promise<void> {
    await this.running;
  }

  /** Stops sending and waits for every request in flight (each bounded by its deadline). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
    this.agent.destroy();
    // Apps print an execution before they answer; give the last lines time to come through their pipes.
    await new Promise((r) => setTimeout(r, 300));
  }

  /** Outcome of requests so far (a scenario may wait for a few successes). */
  count(outcome: Outcome, since = 0): number {
    let n = 0;
    for (const e of this.entries) if (e.outcome === outcome && e.start >= since) n++;
    return n;
  }

  private async loop(o: LoadOptions): Promise<void> {
    const period = 1000 / o.rate;
    const sizes = o.sizes ?? [0, 512, 4096, 20_000];
    const maxInFlight = o.maxInFlight ?? 500;
    const t0 = Date.now();
    const total = Math.ceil((o.maxDurationMs / 1000) * o.rate);
    const pending = new Set<Promise<void>>();
    for (let i = 0; i < total && !this.stopped; i++) {
      const wait = t0 + i * period - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (this.stopped) break;
      if (this.inFlight >= maxInFlight) {
        this.skipped++;
        continue;
      }
      const p = this.one(o, i % 2 === 0 ? 'GET' : 'POST', `${this.scenario}-${i}`, sizes[i % sizes.length] as number);
      pending.add(p);
      void p.finally(() => pending.delete(p));
    }
    await Promise.all(pending);
  }

  private one(o: LoadOptions, method: string, id: string, size: number): Promise<void> {
    this.sent++;
    this.inFlight++;
    const start = Date.now();
    const body = method === 'POST' ? Buffer.alloc(size, `${id}:`) : null;
    const headers: http.OutgoingHttpHeaders = { host: 'api', 'x-ledger-id': id };
    if (body !== null) {
      headers['content-length'] = body.length;
      headers['x-ledger-length'] = String(body.length);
      headers['x-ledger-sha256'] = sha256(body);
    }
    const [host, port] = splitHostPort(o.target);
    return new Promise<void>((resolve) => {
      let settled = false;
      const done = (outcome: Outcome, reason: string, detail?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.inFlight--;
        this.entries.push({ id, method, start, end: Date.now(), outcome, reason, ...(detail !== undefined ? { detail } : {}) });
        resolve();
      };
      const req = http.request({ host, port, method, path: `/ledger?id=${id}&size=${size}`, headers, agent: this.agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => done('lost', `response body: ${err.message}`));
        res.on('aborted', () => done('lost', 'response aborted'));
        res.on('end', () => {
          const got = Buffer.concat(chunks);
          const meshError = res.headers['x-mycel-error'];
          if (typeof meshError === 'string') return done('failed', MESH_REASON.exec(meshError)?.[1] ?? meshError, `${res.statusCode} ${meshError}`);
          const status = res.statusCode ?? 0;
          if (status < 200 || status > 299) return done('lost', `status ${status} without x-mycel-error: ${got.toString('utf8', 0, 200)}`);
          if (res.headers['x-ledger-length'] !== String(got.length) || res.headers['x-ledger-sha256'] !== sha256(got)) {
            return done('lost', `truncated or corrupt body: ${got.length} bytes, announced ${String(res.headers['x-ledger-length'])}`);
          }
          done('ok', '');
        });
      });
      const timer = setTimeout(() => {
        done('lost', `no answer within the ${o.deadlineMs} ms deadline`);
        req.destroy();
      }, o.deadlineMs);
      req.on('error', (err) => done('lost', `client: ${err.message}`));
      req.end(body ?? undefined);
    });
  }

  report(): LedgerReport {
    const byReason: Record<string, number> = {};
    const lostSamples: string[] = [];
    const lostRequests: Array<{ id: string; reason: string }> = [];
    const failedSamples: string[] = [];
    const failedByMethod: Record<string, number> = {};
    let ok = 0;
    let failed = 0;
    let lost = 0;
    let lastBadEnd = -1;
    const okPosts: string[] = [];
    for (const e of this.entries) {
      if (e.outcome === 'ok') {
        ok++;
        if (e.method === 'POST') okPosts.push(e.id);
        continue;
      }
      if (e.outcome === 'failed') {
        failed++;
        byReason[e.reason] = (byReason[e.reason] ?? 0) + 1;
        failedByMethod[e.method] = (failedByMethod[e.method] ?? 0) + 1;
        if (failedSamples.length < 5) failedSamples.push(`${e.method} ${e.id}: ${e.detail ?? e.reason}`);
      } else {
        lost++;
        lostRequests.push({ id: e.id, reason: e.reason });
        if (lostSamples.length < 5) lostSamples.push(`${e.method} ${e.id}: ${e.reason}`);
      }
      if (this.markAt !== null && e.end >= this.markAt) lastBadEnd = Math.max(lastBadEnd, e.end);
    }
    const duplicated = [...this.executions].filter(([, n]) => n > 1).map(([id]) => id);
    const unexecutedOk = okPosts.filter((id) => this.executions.get(id) !== 1);
    const convergeMs = this.markAt === null ? null : lastBadEnd < 0 ? 0 : lastBadEnd - this.markAt;
    return { scenario: this.scenario, sent: this.sent, ok, failed, byReason, lost, lostSamples, lostRequests, failedSamples, failedByMethod, skipped: this.skipped, duplicated, truncated: [...this.truncated], unexecutedOk, convergeMs, servedBy: { ...this.servedBy } };
  }
}

/** One line for a note: `LEDGER scenario=... sent=... ok=... failed=... (reason=n,...) lost=0 converge_ms=...`. */
export function ledgerLine(r: LedgerReport, extra: Record<string, string | number> = {}): string {
  const reasons = Object.entries(r.byReason).sort().map(([k, v]) => `${k}:${v}`).join(',');
  const more = Object.entries(extra).map(([k, v]) => ` ${k}=${v}`).join('');
  const served = Object.entries(r.servedBy).sort().map(([k, v]) => `${k}:${v}`).join(',');
  return `LEDGER scenario=${r.scenario} sent=${r.sent} ok=${r.ok} failed=${r.failed} reasons=${reasons || '-'} lost=${r.lost} duplicated=${r.duplicated.length} truncated=${r.truncated.length} skipped=${r.skipped} converge_ms=${r.convergeMs ?? '-'} served=${served || '-'}${more}`;
}

/** The invariants every scenario holds to, as one list of broken ones (empty: the ledger balances). */
export function ledgerViolations(r: LedgerReport): string[] {
  const v: string[] = [];
  if (r.lost > 0) v.push(`${r.lost} requests lost (neither a success nor a mesh error in time): ${r.lostSamples.join('; ')}`);
  if (r.duplicated.length > 0) v.push(`POSTs executed twice: ${r.duplicated.slice(0, 5).join(', ')}`);
  if (r.truncated.length > 0) v.push(`truncated request bodies reached an app: ${r.truncated.slice(0, 5).join(', ')}`);
  if (r.unexecutedOk.length > 0) v.push(`POSTs answered 2xx that no app executed exactly once: ${r.unexecutedOk.slice(0, 5).join(', ')}`);
  if (r.sent === 0) v.push('no request was sent');
  return v;
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

function splitHostPort(addr: string): [string, number] {
  const i = addr.lastIndexOf(':');
  return [addr.slice(0, i), Number(addr.slice(i + 1))];
}
