// Simulated proxies for the control-plane scale benchmark (a forked worker): each holds its own HTTP/2 session and
// config stream to `mycel control`, speaks the real protocol (hello, an ACK per config version, heartbeats at the
// welcome's interval) and records, per proxy, the bytes it receives and when it ACKed which version.
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { encodeMessage, LineDecoder, MAX_CONTROL_MESSAGE_BYTES, STREAM_PATH, STREAM_PROTOCOL } from '../../src/api/v1alpha1/stream-messages.js';
import type { SimProxySpec } from '../lib/scale-model.js';
import { wallMs } from '../lib/wall-clock.js';

/** Runner -> worker. Every request carries an id that its reply repeats. */
export type ClientRequest =
  | { id: number; op: 'connect'; url: string; proxies: Array<SimProxySpec & { token: string }>; concurrency: number; timeoutMs: number }
  | { id: number; op: 'status' }
  /** Starts a measurement window: counters reset; `targets` (gids) are the proxies that must receive it (null: all). */
  | { id: number; op: 'mark'; targets: number[] | null }
  | { id: number; op: 'count'; minVersion: number }
  | { id: number; op: 'report'; minVersion: number }
  | { id: number; op: 'close' };

export interface StatusReply {
  open: number;
  /** Streams that ended or broke after they were connected. */
  lost: number;
  lostReasons: string[];
  /** Wall-clock ms (timeOrigin + now) of the last byte received by any proxy, 0 if none. */
  lastReceiveAt: number;
}

export interface ConnectReply {
  connected: number;
  failed: number;
  errors: string[];
}

export interface CountReply {
  targets: number;
  acked: number;
}

export interface ReportReply {
  targets: number;
  /** Wall-clock ms at which each target proxy ACKed its first version >= minVersion (missing ones left out). */
  ackAt: number[];
  missing: number;
  targetBytes: number;
  otherBytes: number;
  targetReceivers: number;
  /** Proxies outside the targets that received anything in the window (should be none for a scoped change). */
  otherReceivers: number;
  messages: number;
}

export type ClientReply = { id: number; error?: string } & Partial<StatusReply & ConnectReply & CountReply & ReportReply>;

const CONFIG_HEAD = '{"type":"config","version":';

class SimProxy {
  session: ClientHttp2Session | null = null;
  stream: ClientHttp2Stream | null = null;
  readonly decoder = new LineDecoder(MAX_CONTROL_MESSAGE_BYTES);
  connected = false;
  heartbeatBucket = 0;
  // The current measurement window.
  target = true;
  bytes = 0;
  messages = 0;
  /** (version, wall ms) of every ACK sent in the window, flattened. */
  acks: number[] = [];
  constructor(readonly spec: SimProxySpec & { token: string }) {}
}

const proxies: SimProxy[] = [];
let heartbeatTimer: NodeJS.Timeout | null = null;
let lost = 0;
const lostReasons: string[] = [];
let lastReceiveAt = 0;

function send(p: SimProxy, line: string): void {
  const s = p.stream;
  if (s !== null && !s.destroyed && s.writable) s.write(line);
}

/** One timer per worker: every 100 ms the proxies of one bucket send their heartbeat, spreading them evenly. */
function startHeartbeats(intervalMs: number): void {
  if (heartbeatTimer !== null) return;
  const buckets = Math.max(1, Math.round(intervalMs / 100));
  for (const p of proxies) p.heartbeatBucket = p.spec.gid % buckets;
  const line = encodeMessage({ type: 'heartbeat' });
  let tick = 0;
  heartbeatTimer = setInterval(() => {
    const bucket = tick++ % buckets;
    for (const p of proxies) if (p.connected && p.heartbeatBucket === bucket) send(p, line);
  }, Math.max(10, Math.floor(intervalMs / buckets)));
}

function noteLost(p: SimProxy, why: string): void {
  if (!p.connected) return;
  p.connected = false;
  lost++;
  if (lostReasons.length < 5) lostReasons.push(`${p.spec.proxyId}: ${why}`);
}

/** Opens the proxy's stream; resolves once its first config arrived and was ACKed. */
function connect(p: SimProxy, url: string, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const session = http2.connect(url);
    const fail = (why: string) => {
      if (settled) {
        noteLost(p, why);
        return;
      }
      settled = true;
      clearTimeout(timer);
      session.destroy();
      reject(new Error(why));
    };
    const timer = setTimeout(() => fail(`no first config within ${timeoutMs} ms`), timeoutMs);
    session.on('error', (err) => fail(err.message));
    session.on('close', () => fail('session closed'));
    session.on('goaway', () => fail('goaway'));
    const stream = session.request({ ':method': 'POST', ':path': STREAM_PATH, authorization: `Bearer ${p.spec.token}`, 'content-type': 'application/x-ndjson' });
    p.session = session;
    p.stream = stream;
    let status = 0;
    stream.on('response', (h) => {
      status = Number(h[':status']);
    });
    stream.on('data', (chunk: Buffer) => {
      const at = wallMs();
      lastReceiveAt = at;
      p.bytes += chunk.length;
      if (status !== 200) {
        fail(`status ${status}: ${chunk.toString('utf8').slice(0, 200)}`);
        return;
      }
      for (const line of p.decoder.push(chunk)) {
        if (line.length === 0) continue;
        p.messages++;
        // A config message: ACK its version at once (a real proxy validates and compiles first; the control plane's
        // side of the exchange is the same).
        if (line.startsWith(CONFIG_HEAD)) {
          const version = parseInt(line.slice(CONFIG_HEAD.length, CONFIG_HEAD.length + 20), 10);
          send(p, encodeMessage({ type: 'ack', version }));
          p.acks.push(version, at);
          if (!settled) {
            settled = true;
            clearTimeout(timer);
            p.connected = true;
            resolve();
          }
          continue;
        }
        const m = JSON.parse(line) as { type: string; heartbeatMs?: number; code?: string; message?: string };
        if (m.type === 'welcome' && typeof m.heartbeatMs === 'number') startHeartbeats(m.heartbeatMs);
        else if (m.type === 'error') fail(`${m.code}: ${m.message}`);
      }
    });
    stream.on('end', () => fail('the control plane ended the stream'));
    stream.on('error', (err) => fail(err.message));
    send(p, encodeMessage({
      type: 'hello',
      protocol: STREAM_PROTOCOL,
      proxyId: p.spec.proxyId,
      service: p.spec.service,
      namespace: 'default',
      subscribe: p.spec.subscribe,
      ...(p.spec.endpoint !== undefined ? { endpoint: { ...p.spec.endpoint, ready: true } } : {}),
    }));
  });
}

async function connectAll(url: string, specs: Array<SimProxySpec & { token: string }>, concurrency: number, timeoutMs: number): Promise<ConnectReply> {
  for (const s of specs) proxies.push(new SimProxy(s));
  const deadline = Date.now() + timeoutMs;
  const errors: string[] = [];
  let failed = 0;
  let next = 0;
  const runner = async (): Promise<void> => {
    while (next < proxies.length) {
      const p = proxies[next++] as SimProxy;
      // Up to three attempts each, all within the overall deadline.
      for (let attempt = 1; ; attempt++) {
        const left = deadline - Date.now();
        try {
          if (left <= 0) throw new Error('connect deadline passed');
          await connect(p, url, Math.min(left, 30_000));
          break;
        } catch (err) {
          if (attempt < 3 && left > 0) continue;
          failed++;
          if (errors.length < 5) errors.push(`${p.spec.proxyId}: ${(err as Error).message}`);
          break;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, runner));
  return { connected: proxies.filter((p) => p.connected).length, failed, errors };
}

function count(minVersion: number): CountReply {
  let targets = 0;
  let acked = 0;
  for (const p of proxies) {
    if (!p.target) continue;
    targets++;
    if (firstAckAt(p, minVersion) !== undefined) acked++;
  }
  return { targets, acked };
}

function firstAckAt(p: SimProxy, minVersion: number): number | undefined {
  for (let i = 0; i < p.acks.length; i += 2) if ((p.acks[i] as number) >= minVersion) return p.acks[i + 1];
  return undefined;
}

function report(minVersion: number): ReportReply {
  const r: ReportReply = { targets: 0, ackAt: [], missing: 0, targetBytes: 0, otherBytes: 0, targetReceivers: 0, otherReceivers: 0, messages: 0 };
  for (const p of proxies) {
    r.messages += p.messages;
    if (p.target) {
      r.targets++;
      r.targetBytes += p.bytes;
      if (p.bytes > 0) r.targetReceivers++;
      const at = firstAckAt(p, minVersion);
      if (at === undefined) r.missing++;
      else r.ackAt.push(at);
    } else {
      r.otherBytes += p.bytes;
      if (p.bytes > 0) r.otherReceivers++;
    }
  }
  return r;
}

function close(): void {
  if (heartbeatTimer !== null) clearInterval(heartbeatTimer);
  for (const p of proxies) {
    p.connected = false;
    p.session?.destroy();
  }
}

async function handle(req: ClientRequest): Promise<ClientReply> {
  switch (req.op) {
    case 'connect':
      return { id: req.id, ...(await connectAll(req.url, req.proxies, req.concurrency, req.timeoutMs)) };
    case 'status':
      return { id: req.id, open: proxies.filter((p) => p.connected).length, lost, lostReasons, lastReceiveAt };
    case 'mark': {
      const targets = req.targets === null ? null : new Set(req.targets);
      for (const p of proxies) {
        p.target = targets === null || targets.has(p.spec.gid);
        p.bytes = 0;
        p.messages = 0;
        p.acks = [];
      }
      return { id: req.id };
    }
    case 'count':
      return { id: req.id, ...count(req.minVersion) };
    case 'report':
      return { id: req.id, ...report(req.minVersion) };
    case 'close':
      close();
      return { id: req.id };
  }
}

process.on('message', (req: ClientRequest) => {
  handle(req).then(
    (reply) => process.send?.(reply),
    (err: unknown) => process.send?.({ id: req.id, error: (err as Error).stack ?? String(err) }),
  );
});
// The runner going away (even by SIGKILL) closes the IPC channel: leave with it.
process.on('disconnect', () => {
  close();
  process.exit(0);
});
