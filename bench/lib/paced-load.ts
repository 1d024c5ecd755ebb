// An open-loop HTTP/1.1 load at a fixed rate from the runner, over keep-alive connections: one continuous run whose
// first seconds warm up, latencies recorded for the rest. No process starts during the measured window (a burst of
// load-generator start-ups would stall the apps pinned beside it), and answers are counted by their x-instance.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { latencySummary } from './loadgen.js';

/** Client certificate and trust for mTLS (file paths); the server must present `serverId` (a SPIFFE URI SAN). */
export interface PacedTls {
  cert: string;
  key: string;
  ca: string;
  serverId: string;
}

export interface PacedResult {
  ok: number;
  errors: number;
  p50Ms: number | null;
  p99Ms: number | null;
  /** Measured answers by their x-instance header. */
  byInstance: Record<string, number>;
}

export interface PacedOptions {
  authority: string;
  path: string;
  rate: number;
  warmupS: number;
  seconds: number;
  maxSockets?: number;
  /** Where the server listens (default 127.0.0.1). */
  host?: string;
  /** TLS 1.3 with a client certificate instead of plain HTTP. */
  tls?: PacedTls;
  /** Called once when the measured window starts (e.g. to sample the server's CPU). */
  onMeasureStart?: () => void;
}

function agentFor(o: PacedOptions): http.Agent {
  const common = { keepAlive: true, maxSockets: o.maxSockets ?? 64 };
  if (o.tls === undefined) return new http.Agent(common);
  const { serverId } = o.tls;
  return new https.Agent({
    ...common,
    cert: readFileSync(o.tls.cert),
    key: readFileSync(o.tls.key),
    ca: readFileSync(o.tls.ca),
    minVersion: 'TLSv1.3',
    // The leaves name a SPIFFE URI, not 127.0.0.1; the chain is still verified against the CA.
    checkServerIdentity: (_host, cert) =>
      (cert.subjectaltname ?? '').split(', ').includes(`URI:${serverId}`) ? undefined : new Error(`server identity is not ${serverId}`),
  });
}

export async function pacedLoad(port: number, o: PacedOptions): Promise<PacedResult> {
  const agent = agentFor(o);
  const request = o.tls === undefined ? http.request : https.request;
  let measuring = false;
  const latencies: number[] = [];
  const byInstance: Record<string, number> = {};
  let errors = 0;
  let inFlight = 0;
  const t0 = performance.now();
  const measureFrom = t0 + o.warmupS * 1000;
  const end = measureFrom + o.seconds * 1000;
  const send = (): void => {
    const started = performance.now();
    const measured = started >= measureFrom;
    inFlight++;
    const req = request({ host: o.host ?? '127.0.0.1', port, path: o.path, headers: { host: o.authority }, agent }, (res) => {
      res.resume();
      res.on('end', () => {
        inFlight--;
        if (!measured) return;
        if (res.statusCode !== 200) {
          errors++;
          return;
        }
        latencies.push(performance.now() - started);
        const who = String(res.headers['x-instance'] ?? '?');
        byInstance[who] = (byInstance[who] ?? 0) + 1;
      });
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.on('error', () => {
      inFlight--;
      if (measured) errors++;
    });
    req.end();
  };
  // A 1 ms tick sends whatever is due, so requests leave evenly at the rate whatever the answers do (open loop).
  let sent = 0;
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now();
      if (!measuring && now >= measureFrom) {
        measuring = true;
        o.onMeasureStart?.();
      }
      // The small epsilon keeps float rounding (0.7 s x 200/s = 139.999...) from losing the last request due.
      const due = Math.floor(((Math.min(now, end) - t0) / 1000) * o.rate + 1e-6);
      while (sent < due) {
        sent++;
        send();
      }
      if (now >= end) {
        clearInterval(timer);
        resolve();
      }
    }, 1);
  });
  for (let i = 0; i < 1000 && inFlight > 0; i++) await new Promise((r) => setTimeout(r, 10));
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { ok: latencies.length, errors: errors + inFlight, ...latencySummary(latencies), byInstance };
}
