// Config from the control plane (`mycel proxy --control URL --token FILE`): one HTTP/2 stream that registers this
// sidecar's endpoint, receives versioned views, ACKs or NACKs each, persists the last good one (so a restart without a
// control plane still serves), and reconnects with jittered backoff when the stream breaks.

import { EventEmitter } from 'node:events';
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type SecureClientSessionOptions } from 'node:http2';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  encodeMessage,
  LineDecoder,
  MAX_CONTROL_MESSAGE_BYTES,
  parseControlMessage,
  RECONNECT_BACKOFF_MAX_MS,
  STREAM_PATH,
  STATS_INTERVAL_MS,
  STREAM_PROTOCOL,
  type ControlMessage,
  type EndpointRegistration,
  type ProxyMessage,
  type TapEvent,
  type TapFilter,
} from '../../api/v1alpha1/stream-messages.js';
import { formatProblem, parseResourceValues, type ConfigProblem } from '../../api/v1alpha1/load.js';
import type { Logger } from '../../core/log.js';
import type { StatsSummary } from '../../telemetry/golden-signals.js';
import { compilePlan, type ProxyPlan } from './plan.js';

export interface ControlSourceOptions {
  url: string;
  /** Other replicas: after a broken stream the next connect goes to the next URL in turn (url, then these). */
  alternates?: string[];
  token: string;
  proxyId: string;
  service: string;
  namespace: string;
  endpoint: EndpointRegistration | undefined;
  /** Host names needed from the start (the upstream bindings). */
  subscribe: string[];
  /** Where the last good view is kept across restarts. */
  stateDir: string;
  log: Logger;
  /** Reconnect backoff bounds. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** How long a new stream may wait for the control plane's welcome. */
  welcomeTimeoutMs?: number;
  /** Runs before each connection attempt, with the URL it is for. */
  prepare?: (url: string) => Promise<void>;
  /** TLS options for an https control plane: the roots that verify it, this proxy's client certificate. */
  tls?: () => SecureClientSessionOptions;
  /** Headers proving this proxy's mesh certificate; when it returns null the join token is sent. */
  authorize?: () => Record<string, string> | null;
  /** The proxy's certificate facts, sent after each welcome (and by reportIdentity on change). */
  identity?: () => { notAfter: number; issuedAt: number; root: string; trustedRoots: string[] } | null;
}

export interface ControlSourceEvents {
  plan: [ProxyPlan];
  rejected: [ConfigProblem[]];
  /** The control plane starts or stops a tap on this proxy. */
  tap: ['start' | 'stop', string, TapFilter];
  /** The stream broke: the control plane's taps are gone (it starts them again on reconnect). */
  disconnected: [];
  /** The mesh CA's trust bundle and the root it issues from. */
  trust: [string, string];
}

/** Tap events wait no further than this in the stream's buffer; more is dropped (and counted) by the sender. */
const TAP_WRITE_LIMIT = 1024 * 1024;

interface Persisted {
  version: number;
  resources: unknown[];
  unresolved: string[];
  subscriptions: string[];
  savedAt: string;
}

export interface ControlStatus {
  url: string;
  connected: boolean;
  replica: string | null;
  lastError: string | null;
  lastNack: { version: number; reason: string } | null;
  /** Names this proxy asked for that no service answers to. */
  unresolved: string[];
}

export class ControlConfigSource extends EventEmitter<ControlSourceEvents> {
  private plan: ProxyPlan | null = null;
  private readonly subscriptions = new Set<string>();
  private unresolved = new Set<string>();
  private session: ClientHttp2Session | null = null;
  private stream: ClientHttp2Stream | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private retry: NodeJS.Timeout | null = null;
  private welcomeTimer: NodeJS.Timeout | null = null;
  private attempts = 0;
  private closed = false;
  private replica: string | null = null;
  private lastError: string | null = null;
  /** The replica URLs in turn, and the one the current (or next) stream uses. */
  private readonly urls: string[];
  private urlIndex = 0;
  private lastNack: { version: number; reason: string } | null = null;
  /** Callers waiting for a host name to be resolved (or declared unknown) by the control plane. */
  private readonly waiters = new Map<string, Array<() => void>>();
  private firstPlan: ((p: ProxyPlan) => void) | null = null;
  private firstPlanFailed: ((err: Error) => void) | null = null;
  private ready = true;
  /** The control plane's taps open on this stream (a sidecar that wires up late starts these). */
  readonly activeTaps = new Map<string, TapFilter>();
  private saving: Promise<void> = Promise.resolve();
  /** Where the golden-signal summaries come from (set by the sidecar); taken only while the stream is up. */
  stats: { take(): StatsSummary } | null = null;
  private statsTimer: NodeJS.Timeout | null = null;
  /** A last check by the sidecar of a compiled plan against what it runs with; a reason rejects the version. */
  check: (plan: ProxyPlan) => string | undefined = () => undefined;

  constructor(private readonly o: ControlSourceOptions & { endpoint: EndpointRegistration | undefined }) {
    super();
    this.urls = [o.url, ...(o.alternates ?? [])];
    for (const s of o.subscribe) this.subscriptions.add(s.toLowerCase());
  }

  get current(): ProxyPlan {
    if (this.plan === null) throw new Error('config not loaded yet');
    return this.plan;
  }

  status(): ControlStatus {
    return { url: this.url, connected: this.stream !== null && this.replica !== null, replica: this.replica, lastError: this.lastError, lastNack: this.lastNack, unresolved: [...this.unresolved].sort() };
  }

  private get url(): string {
    return this.urls[this.urlIndex % this.urls.length]!;
  }

  private get file(): string {
    return join(this.o.stateDir, 'last-good.json');
  }

  /**
   * Resolves with the first plan: the persisted last good view if there is one (the stream then updates it), else the
   * first view the control plane sends. Connecting starts here and goes on in the background.
   */
  async load(): Promise<ProxyPlan> {
    const saved = await this.readPersisted();
    this.connect();
    if (saved !== null) {
      for (const s of saved.subscriptions) this.subscriptions.add(s);
      const r = this.compile(saved.resources, saved.version);
      if (!(r instanceof Error)) {
        this.plan = r;
        this.unresolved = new Set(saved.unresolved);
        this.o.log.info('serving the persisted last good config until the control plane answers', { version: saved.version, savedAt: saved.savedAt });
        return r;
      }
      this.o.log.warn('the persisted config is not usable; waiting for the control plane', { reason: r.message });
    }
    return new Promise<ProxyPlan>((resolve, reject) => {
      this.firstPlan = resolve;
      this.firstPlanFailed = reject;
      // Also keeps the process alive while there is nothing else to do but wait.
      const tick = setInterval(() => {
        if (this.plan !== null || this.closed) clearInterval(tick);
        else this.o.log.warn('still waiting for a first config from the control plane', { url: this.url, lastError: this.lastError });
      }, 5000);
    });
  }

  private async readPersisted(): Promise<Persisted | null> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch {
      return null;
    }
    try {
      const p = JSON.parse(text) as Persisted;
      if (typeof p.version !== 'number' || !Array.isArray(p.resources)) throw new Error('missing version or resources');
      return { ...p, unresolved: p.unresolved ?? [], subscriptions: p.subscriptions ?? [] };
    } catch (err) {
      this.o.log.warn('ignoring an unreadable persisted config', { file: this.file, reason: (err as Error).message });
      return null;
    }
  }

  private persist(version: number, resources: unknown[], unresolved: string[]): void {
    const body: Persisted = { version, resources, unresolved, subscriptions: [...this.subscriptions].sort(), savedAt: new Date().toISOString() };
    const file = this.file;
    // Writes are chained so that an older view never lands after a newer one; tmp + rename keeps the file whole.
    this.saving = this.saving.then(async () => {
      try {
        await mkdir(this.o.stateDir, { recursive: true });
        await writeFile(`${file}.tmp`, JSON.stringify(body));
        await rename(`${file}.tmp`, file);
      } catch (err) {
        this.o.log.warn('could not persist the last good config', { file, reason: (err as Error).message });
      }
    });
  }

  private compile(resources: unknown[], version: number): ProxyPlan | Error {
    const parsed = parseResourceValues(resources, `version ${version}`);
    if (!parsed.ok) {
      const p = parsed.problems;
      return new Error(`${formatProblem(p[0]!)}${p.length > 1 ? ` (and ${p.length - 1} more problems)` : ''}`);
    }
    let plan: ProxyPlan;
    try {
      plan = compilePlan(parsed.resources.map((l) => l.resource), this.o.service, version);
    } catch (err) {
      return new Error(`cannot compile: ${(err as Error).message}`);
    }
    const reason = this.check(plan);
    return reason === undefined ? plan : new Error(reason);
  }

  // ---- the stream --------------------------------------------------------------------------------------------------

  private connect(): void {
    if (this.closed) return;
    // E.g. fetch the root a join token pins while the control plane was away; if that fails the connection fails too, and is retried.
    if (this.o.prepare !== undefined) {
      void this.o.prepare(this.url).catch(() => {}).then(() => this.open());
      return;
    }
    this.open();
  }

  private open(): void {
    if (this.closed) return;
    const url = this.url;
    const session = http2.connect(url, this.o.tls?.() ?? {});
    this.session = session;
    session.on('error', (err) => this.broken(`control plane ${url}: ${err.message}`));
    session.on('close', () => this.broken('the connection to the control plane closed'));
    session.on('goaway', () => this.broken('the control plane is going away'));
    // A control plane that accepts the connection but never answers (frozen, or a black hole) must not hold us.
    const welcomeMs = this.o.welcomeTimeoutMs ?? 10_000;
    this.welcomeTimer = setTimeout(() => {
      if (this.session === session && this.replica === null) this.broken(`no welcome from the control plane within ${welcomeMs} ms`);
    }, welcomeMs);
    this.welcomeTimer.unref();
    const auth = this.o.authorize?.() ?? { authorization: `Bearer ${this.o.token}` };
    const stream = session.request({ ':method': 'POST', ':path': STREAM_PATH, ...auth, 'content-type': 'application/x-ndjson' });
    this.stream = stream;
    const decoder = new LineDecoder(MAX_CONTROL_MESSAGE_BYTES);
    let status = 0;
    let errorBody = '';
    stream.on('response', (h) => {
      status = Number(h[':status']);
    });
    stream.on('data', (chunk: Buffer) => {
      if (status !== 200) {
        if (errorBody.length < 2000) errorBody += chunk.toString('utf8');
        return;
      }
      let lines: string[];
      try {
        lines = decoder.push(chunk);
      } catch (err) {
        this.broken((err as Error).message);
        return;
      }
      for (const line of lines) if (line.length > 0) this.onMessage(line);
    });
    stream.on('end', () => {
      if (status === 401 || status === 403) this.refused(`the control plane refused the token (${status}): ${errorBody.trim().slice(0, 300)}`);
      this.broken(status !== 200 && status !== 0 ? `the control plane refused the stream (${status}): ${errorBody.trim().slice(0, 500)}` : 'the control plane ended the stream');
    });
    stream.on('error', (err) => this.broken(err.message));
    this.send({
      type: 'hello',
      protocol: STREAM_PROTOCOL,
      proxyId: this.o.proxyId,
      service: this.o.service,
      namespace: this.o.namespace,
      ...(this.o.endpoint !== undefined ? { endpoint: { ...this.o.endpoint, ready: this.ready } } : {}),
      subscribe: [...this.subscriptions].sort(),
      ...(this.plan !== null ? { version: this.plan.version } : {}),
    });
  }

  private send(m: ProxyMessage): void {
    const s = this.stream;
    if (s !== null && !s.destroyed && s.writable) s.write(encodeMessage(m));
  }

  /** One batch of a control-plane tap; false when the stream is down or already holds too much. */
  sendTapEvents(id: string, events: TapEvent[], dropped: number): boolean {
    const s = this.stream;
    if (s === null || s.destroyed || !s.writable || this.replica === null || s.writableLength > TAP_WRITE_LIMIT) return false;
    s.write(encodeMessage({ type: 'tap-events', id, events, dropped }));
    return true;
  }

  private onMessage(line: string): void {
    const m = parseControlMessage(line);
    if (m instanceof Error) {
      this.o.log.warn('ignoring a malformed message from the control plane', { reason: m.message });
      return;
    }
    this.handle(m);
  }

  private handle(m: ControlMessage): void {
    switch (m.type) {
      case 'welcome': {
        if (this.welcomeTimer !== null) clearTimeout(this.welcomeTimer);
        this.replica = m.replica;
        this.attempts = 0;
        this.lastError = null;
        if (this.heartbeat !== null) clearInterval(this.heartbeat);
        // A heartbeat renews the lease; an HTTP/2 PING tells a control plane that vanished without closing the
        // connection (a partition, a frozen host) from a quiet one.
        let lastPong = Date.now();
        this.heartbeat = setInterval(() => {
          this.send({ type: 'heartbeat' });
          const session = this.session;
          if (session === null || session.destroyed) return;
          if (Date.now() - lastPong > m.leaseMs) {
            this.broken(`no answer from the control plane for ${m.leaseMs} ms`);
            return;
          }
          session.ping((err) => {
            if (err === null) lastPong = Date.now();
          });
        }, Math.max(100, m.heartbeatMs));
        this.heartbeat.unref();
        if (this.statsTimer !== null) clearInterval(this.statsTimer);
        this.statsTimer = setInterval(() => this.sendStats(), m.statsIntervalMs ?? STATS_INTERVAL_MS);
        this.statsTimer.unref();
        this.o.log.info('connected to the control plane', { url: this.url, replica: m.replica });
        this.reportIdentity();
        return;
      }
      case 'trust':
        this.emit('trust', m.bundle, m.activeRoot);
        return;
      case 'config':
        this.applyConfig(m.version, m.resources, m.unresolved);
        return;
      case 'tap':
        if (m.action === 'start') this.activeTaps.set(m.id, m.filter);
        else this.activeTaps.delete(m.id);
        this.emit('tap', m.action, m.id, m.filter);
        return;
      case 'error':
        this.lastError = `${m.code}: ${m.message}`;
        this.o.log.warn('the control plane closed the stream', { code: m.code, reason: m.message });
        if (m.code === 'forbidden') this.refused(`the control plane refused this proxy: ${m.message}`);
        return;
    }
  }

  /**
   * The control plane will not serve this proxy (wrong token or service). Before a first config that is fatal, so that
   * the operator sees it at once; a proxy already serving keeps its config and keeps trying.
   */
  private refused(reason: string): void {
    const fail = this.firstPlanFailed;
    if (fail === null || this.plan !== null) return;
    this.firstPlan = null;
    this.firstPlanFailed = null;
    this.closed = true;
    fail(new Error(reason));
  }

  private applyConfig(version: number, resources: unknown[], unresolved: string[]): void {
    const r = this.compile(resources, version);
    if (r instanceof Error) {
      this.lastNack = { version, reason: r.message };
      this.send({ type: 'nack', version, reason: r.message });
      this.o.log.error('config version rejected; the running config stays', { version, reason: r.message, runningVersion: this.plan?.version ?? null });
      this.emit('rejected', [{ file: this.url, line: 0, column: 0, path: '', message: `version ${version}: ${r.message}` }]);
      return;
    }
    this.unresolved = new Set(unresolved);
    const prev = this.plan;
    this.plan = r;
    this.send({ type: 'ack', version });
    this.persist(version, resources, unresolved);
    if (this.firstPlan !== null) {
      const resolve = this.firstPlan;
      this.firstPlan = null;
      this.firstPlanFailed = null;
      resolve(r);
    } else if (prev === null || prev.hash !== r.hash || prev.version !== r.version) {
      this.emit('plan', r);
    }
    this.wake(false);
  }

  private broken(reason: string): void {
    if (this.session === null) return;
    const session = this.session;
    this.session = null;
    this.stream = null;
    this.replica = null;
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    this.heartbeat = null;
    if (this.statsTimer !== null) clearInterval(this.statsTimer);
    this.statsTimer = null;
    session.destroy();
    this.activeTaps.clear();
    this.emit('disconnected');
    if (this.closed) return;
    // Full jitter over an exponentially growing window: many proxies losing one replica do not come back in step.
    const min = this.o.backoffMinMs ?? 200;
    const max = this.o.backoffMaxMs ?? RECONNECT_BACKOFF_MAX_MS;
    const window = Math.min(max, min * 2 ** Math.min(this.attempts, 16));
    const delay = min + Math.random() * (window - min);
    this.attempts++;
    // With several replicas, try the next one: the one that broke may be gone for good.
    this.urlIndex = (this.urlIndex + 1) % this.urls.length;
    this.o.log.warn('control plane stream lost; serving the last good config and reconnecting', { reason, retryInMs: Math.round(delay), version: this.plan?.version ?? null });
    this.lastError = reason;
    this.retry = setTimeout(() => {
      this.retry = null;
      this.connect();
    }, delay);
    this.retry.unref();
    this.wake(true);
  }

  // ---- on-demand discovery -------------------------------------------------------------------------------------------

  /**
   * A request named a host this proxy has no service for: ask the control plane (once per name) and wait until it
   * answers or `timeoutMs` passes. Resolves true when the plan may now know the host.
   */
  discover(host: string, timeoutMs: number): Promise<boolean> {
    const name = host.toLowerCase();
    if (this.unresolved.has(name) && this.subscriptions.has(name)) return Promise.resolve(false);
    if (this.stream === null || this.replica === null) return Promise.resolve(false);
    if (!this.subscriptions.has(name)) {
      this.subscriptions.add(name);
      this.send({ type: 'subscribe', names: [name] });
    }
    return new Promise<boolean>((resolve) => {
      let done = false;
      const finish = (v: boolean) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(v);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      let list = this.waiters.get(name);
      if (list === undefined) this.waiters.set(name, (list = []));
      list.push(() => finish(true));
    });
  }

  /** Releases the waiters whose name the control plane has now answered (all of them when the stream broke). */
  private wake(all: boolean): void {
    if (this.waiters.size === 0) return;
    for (const [name, list] of this.waiters) {
      if (!all && this.plan?.lookupHost(name) === undefined && !this.unresolved.has(name)) continue;
      this.waiters.delete(name);
      for (const w of list) w();
    }
  }

  /** Tells the control plane this proxy's certificate facts (after each issuance and bundle change). */
  reportIdentity(): void {
    const r = this.o.identity?.();
    if (r !== null && r !== undefined) this.send({ type: 'identity', ...r });
  }

  /** The golden signals since the last summary; while the stream is down they keep adding up for the next one. */
  private sendStats(): void {
    if (this.stats === null || this.stream === null || this.replica === null) return;
    const summary = this.stats.take();
    if (summary.series.length === 0 && summary.dropped === 0) return;
    this.send({ type: 'stats', intervalMs: summary.intervalMs, series: summary.series, dropped: summary.dropped });
  }

  /** Registers this sidecar's endpoint now and on every reconnect. */
  register(endpoint: EndpointRegistration): void {
    this.o.endpoint = endpoint;
    this.send({ type: 'register', endpoint: { ...endpoint, ready: this.ready } });
  }

  /** Config comes from the stream; there is nothing to re-read. */
  reload(): Promise<void> {
    return Promise.resolve();
  }

  /** The app's readiness as this sidecar sees it (reported so that callers skip an endpoint that is not ready). */
  setReady(ready: boolean): void {
    if (this.ready === ready) return;
    this.ready = ready;
    this.send({ type: 'ready', ready });
  }

  /** Clean shutdown: deregister now, then close the stream. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retry !== null) clearTimeout(this.retry);
    if (this.heartbeat !== null) clearInterval(this.heartbeat);
    if (this.statsTimer !== null) clearInterval(this.statsTimer);
    // The last interval's requests reach the control plane before the goodbye.
    this.sendStats();
    const stream = this.stream;
    const session = this.session;
    this.session = null;
    this.stream = null;
    if (stream !== null && !stream.destroyed) {
      await new Promise<void>((resolve) => {
        stream.end(encodeMessage({ type: 'goodbye' }), () => resolve());
        setTimeout(resolve, 500).unref();
      });
    }
    session?.close();
    setTimeout(() => session?.destroy(), 500).unref();
    await this.saving;
  }
}
