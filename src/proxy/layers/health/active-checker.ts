// Active health checking of a destination's endpoints: each endpoint is probed every interval (HTTP, gRPC or TCP)
// over a socket from the caller's `connect` (so checks can ride the mesh's mTLS), and flips healthy or unhealthy
// after the configured number of consecutive results. The first result of a new endpoint decides at once.

import net, { type Socket } from 'node:net';
import { grpcProbe, httpProbe, type ProbeResult, type StatusRange } from './probes.js';

export interface CheckedEndpoint {
  readonly key: string;
  readonly address: string;
  readonly port: number;
}

/** What a check speaks, so the connector can pick ALPN: h2 for gRPC, http/1.1 for HTTP, none for TCP. */
export type HealthProtocol = 'http/1.1' | 'h2' | 'tcp';

/** Opens a connection to an endpoint and resolves once it is usable (connected, or TLS handshake done). */
export type HealthConnect<E> = (endpoint: E, protocol: HealthProtocol) => Promise<Socket>;

export interface ActiveHealthOptions {
  type: 'http' | 'grpc' | 'tcp';
  /** HTTP: the path to GET (default /). */
  path?: string;
  /** HTTP: statuses that count as healthy, single codes or inclusive ranges (default 200-299). */
  expectedStatuses?: readonly (number | StatusRange)[];
  /** HTTP Host / gRPC :authority (default address:port of the endpoint). */
  authority?: string;
  /** gRPC: the service name asked about ('' = the server as a whole, the default). */
  grpcService?: string;
  /** Default 10 s. */
  intervalMs?: number;
  /** Connect plus answer, default 1 s. */
  timeoutMs?: number;
  /** Consecutive successes that make an unhealthy endpoint healthy (default 2). */
  healthyThreshold?: number;
  /** Consecutive failures that make a healthy endpoint unhealthy (default 3). */
  unhealthyThreshold?: number;
}

export interface EndpointHealth {
  healthy: boolean;
  /** Whether any check has finished yet. */
  checked: boolean;
  consecutiveSuccesses: number;
  consecutiveFailures: number;
  lastDetail: string;
}

interface CheckRecord<E> extends EndpointHealth {
  endpoint: E;
  running: boolean;
  timer: NodeJS.Timeout | null;
}

/** Connects over plain TCP: the connector for endpoints outside the mesh, and for tests. */
export function plainConnect(endpoint: CheckedEndpoint): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: endpoint.address, port: endpoint.port });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

export interface ActiveHealthHooks<E> {
  /** An endpoint turned healthy or unhealthy. */
  onChange?: (endpoint: E, healthy: boolean, detail: string) => void;
  /** Every finished check, for logs and endpoint status pages. */
  onCheck?: (endpoint: E, ok: boolean, detail: string) => void;
  /** Uniform in [0, 1), for the first check's offset (tests pass a fixed one). */
  random?: () => number;
}

export class ActiveHealthChecker<E extends CheckedEndpoint = CheckedEndpoint> {
  /** Increases whenever an endpoint changes health; views compare it instead of subscribing. */
  generation = 0;
  private readonly records = new Map<string, CheckRecord<E>>();
  private readonly expected: readonly StatusRange[];
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private readonly healthyThreshold: number;
  private readonly unhealthyThreshold: number;
  private running = false;

  constructor(
    private readonly options: ActiveHealthOptions,
    private readonly connect: HealthConnect<E> = plainConnect as HealthConnect<E>,
    private readonly hooks: ActiveHealthHooks<E> = {},
  ) {
    this.expected = (options.expectedStatuses ?? [[200, 299]]).map((s): StatusRange => (typeof s === 'number' ? [s, s] : s));
    this.intervalMs = Math.max(1, options.intervalMs ?? 10_000);
    this.timeoutMs = Math.max(1, options.timeoutMs ?? 1_000);
    this.healthyThreshold = Math.max(1, options.healthyThreshold ?? 2);
    this.unhealthyThreshold = Math.max(1, options.unhealthyThreshold ?? 3);
  }

  /** Replaces the endpoint set; endpoints that stay keep their health and their schedule. */
  update(endpoints: readonly E[]): void {
    const keep = new Set<string>();
    for (const e of endpoints) {
      keep.add(e.key);
      const r = this.records.get(e.key);
      if (r !== undefined) {
        r.endpoint = e;
        continue;
      }
      const rec: CheckRecord<E> = { endpoint: e, healthy: true, checked: false, consecutiveSuccesses: 0, consecutiveFailures: 0, lastDetail: 'not checked yet', running: false, timer: null };
      this.records.set(e.key, rec);
      if (this.running) this.schedule(rec, this.firstDelay());
    }
    for (const [key, r] of this.records) {
      if (keep.has(key)) continue;
      if (r.timer !== null) clearTimeout(r.timer);
      this.records.delete(key);
    }
    this.generation++;
  }

  /** Healthy, or not checked by this checker (an unknown key is not this checker's business). */
  isHealthy(key: string): boolean {
    return this.records.get(key)?.healthy ?? true;
  }

  health(key: string): EndpointHealth | undefined {
    const r = this.records.get(key);
    return r === undefined ? undefined : { healthy: r.healthy, checked: r.checked, consecutiveSuccesses: r.consecutiveSuccesses, consecutiveFailures: r.consecutiveFailures, lastDetail: r.lastDetail };
  }

  /** Probes every endpoint (or one) now and resolves when those checks are done; skips one whose check is running. */
  async checkNow(key?: string): Promise<void> {
    const recs = key === undefined ? [...this.records.values()] : [this.records.get(key)].filter((r) => r !== undefined);
    await Promise.all(recs.map((r) => this.runCheck(r)));
  }

  /** Starts periodic checks; the first check of each endpoint comes at a random point of the first interval. */
  start(): void {
    if (this.running) return;
    this.running = true;
    for (const r of this.records.values()) this.schedule(r, this.firstDelay());
  }

  stop(): void {
    this.running = false;
    for (const r of this.records.values()) {
      if (r.timer !== null) clearTimeout(r.timer);
      r.timer = null;
    }
  }

  private firstDelay(): number {
    return Math.floor((this.hooks.random ?? Math.random)() * this.intervalMs);
  }

  private schedule(r: CheckRecord<E>, delayMs: number): void {
    r.timer = setTimeout(() => {
      r.timer = null;
      void this.runCheck(r).then(() => {
        if (this.running && this.records.get(r.endpoint.key) === r) this.schedule(r, this.intervalMs);
      });
    }, delayMs);
    r.timer.unref();
  }

  private async runCheck(r: CheckRecord<E>): Promise<void> {
    if (r.running) return;
    r.running = true;
    const result = await this.probe(r.endpoint);
    r.running = false;
    // The endpoint left the set while it was being checked: the answer no longer matters.
    if (this.records.get(r.endpoint.key) !== r) return;
    this.record(r, result);
  }

  private record(r: CheckRecord<E>, result: ProbeResult): void {
    const first = !r.checked;
    r.checked = true;
    r.lastDetail = result.detail;
    let flipped = false;
    if (result.ok) {
      r.consecutiveSuccesses++;
      r.consecutiveFailures = 0;
      if (!r.healthy && r.consecutiveSuccesses >= this.healthyThreshold) flipped = r.healthy = true;
    } else {
      r.consecutiveFailures++;
      r.consecutiveSuccesses = 0;
      if (r.healthy && (first || r.consecutiveFailures >= this.unhealthyThreshold)) {
        r.healthy = false;
        flipped = true;
      }
    }
    if (flipped) {
      this.generation++;
      this.hooks.onChange?.(r.endpoint, r.healthy, result.detail);
    }
    this.hooks.onCheck?.(r.endpoint, result.ok, result.detail);
  }

  /** Connect and probe within the timeout; on timeout the socket is destroyed, which settles the probe. */
  private probe(endpoint: E): Promise<ProbeResult> {
    const o = this.options;
    const protocol: HealthProtocol = o.type === 'grpc' ? 'h2' : o.type === 'http' ? 'http/1.1' : 'tcp';
    const authority = o.authority ?? (endpoint.address.includes(':') ? `[${endpoint.address}]:${endpoint.port}` : `${endpoint.address}:${endpoint.port}`);
    return new Promise<ProbeResult>((resolve) => {
      let socket: Socket | null = null;
      let settled = false;
      const finish = (result: ProbeResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket?.destroy();
        resolve(result);
      };
      const timer = setTimeout(() => finish({ ok: false, detail: `no answer within ${this.timeoutMs} ms` }), this.timeoutMs);
      // (A connector that throws instead of rejecting counts as a failed connect too.)
      Promise.resolve().then(() => this.connect(endpoint, protocol)).then(
        (s) => {
          if (settled) {
            s.destroy(); // connected after the timeout
            return;
          }
          socket = s;
          if (o.type === 'tcp') return finish({ ok: true, detail: 'connected' });
          const p = o.type === 'grpc' ? grpcProbe(s, authority, o.grpcService ?? '') : httpProbe(s, authority, o.path ?? '/', this.expected);
          void p.then(finish);
        },
        (err: unknown) => finish({ ok: false, detail: `connect: ${err instanceof Error ? err.message : String(err)}` }),
      );
    });
  }
}
