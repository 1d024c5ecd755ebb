// Push: one long-lived HTTP/2 stream per proxy. Registers the proxy's endpoint, computes its scoped view (shared by
// every proxy that asks for the same one), sends a new version only when the view's content changed, and records
// each proxy's ACK or NACK. A NACKed version is never re-sent; the next change brings the next version. Taps ride
// the same streams: started on every connected proxy (and on those that connect later), their events handed back.
// During warm-up (warm-up.ts) a view that would take endpoints away from a proxy that already serves a config waits.

import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { encodeMessage, LineDecoder, MAX_PROXY_MESSAGE_BYTES, parseProxyMessage, type ProxyMessage, type TapEvent, type TapFilter } from '../../api/v1alpha1/stream-messages.js';
import type { Logger } from '../../core/log.js';
import type { Principal } from '../auth/tokens.js';
import type { ControlMetrics } from '../metrics.js';
import type { Registry } from '../registry/registry.js';
import type { SignalWindow } from '../stats/signal-window.js';
import type { Store } from '../store/store.js';
import type { Changes, MeshIndex } from '../translate/mesh-index.js';
import type { ProxyStatus } from '../../api/v1alpha1/control-api.js';
import { computeView } from '../translate/view.js';
import { configMessage, resourcesJson } from './config-message.js';
import { holdReason, Warmup } from './warm-up.js';

export type { ProxyStatus };

/** Receives a batch of a tap's events from one proxy, and how many that proxy had to drop. */
export type TapSink = (events: TapEvent[], dropped: number, proxyId: string) => void;

/** Concurrent taps per replica (each open `mycel tap` or API tap client is one; proxies take as many). */
export const MAX_TAPS = 32;

interface ControlTap {
  readonly id: string;
  readonly filter: TapFilter;
  readonly sink: TapSink;
}

class ViewState {
  readonly sessions = new Set<Session>();
  /** The resources JSON of the current version: a new version is sent only when this text changes. */
  body = '';
  message = '';
  version = -1;
  deps = new Set<string>();
  endpoints: ReadonlyMap<string, number> = new Map();
  unresolved = 0;
  dirty = true;
  /** When the change that produced the current version reached this replica (for the push duration metric). */
  changedAt = 0;
  constructor(
    readonly key: string,
    readonly service: string,
    readonly namespace: string,
    readonly subscriptions: readonly string[],
  ) {}
}

class Session {
  view: ViewState | null = null;
  subscriptions = new Set<string>();
  sentVersion: number | null = null;
  sentBody = '';
  /** Endpoints per service in what this stream sent last (null: nothing yet). */
  sentEndpoints: ReadonlyMap<string, number> | null = null;
  /** The proxy said in its hello which version it serves: it has a config to lose. */
  servesConfig = false;
  /** A view waiting for the warm-up (why, since when). */
  held: { reason: string; since: number } | null = null;
  sentAt = 0;
  ackedVersion: number | null = null;
  nack: ProxyStatus['nack'] = null;
  lastContact = Date.now();
  readonly connectedAt = new Date();
  closed = false;
  registered = false;
  ready = true;
  appPort: number | undefined = undefined;
  endpoint: ProxyStatus['endpoint'] = null;
  cert: { notAfter: number; issuedAt: number; root: string; trustedRoots: string[] } | null = null;
  /** The newest trust message waiting for the stream to drain. */
  pendingTrust: string | null = null;
  /** A message that waits for the stream to drain (only the newest is kept). */
  pending: string | null = null;
  constructor(
    readonly proxyId: string,
    readonly service: string,
    readonly namespace: string,
    readonly address: string | null,
    readonly res: Http2ServerResponse,
  ) {}

  /** A small message (tap start/stop) that must not replace a pending config: written at once. */
  sendNow(message: string): void {
    if (this.closed) return;
    try {
      this.res.write(message);
    } catch {
      /* the stream is gone; its close handler drops the session */
    }
  }

  send(message: string): void {
    if (this.closed) return;
    if (this.pending !== null) {
      this.pending = message;
      return;
    }
    if (!this.res.write(message)) {
      this.pending = '';
      this.res.once('drain', () => {
        const next = this.pending;
        const trust = this.pendingTrust;
        this.pending = null;
        this.pendingTrust = null;
        // The trust bundle goes first: a config may name peers whose certificates only the new bundle accepts.
        if (trust !== null) this.send(trust);
        if (next) this.send(next);
      });
    }
  }

  /** The mesh CA's trust message: never replaced by a config while the stream is backed up (only by a newer trust message). */
  sendTrust(message: string): void {
    if (this.pending !== null) this.pendingTrust = message;
    else this.send(message);
  }
}

export interface PushServerOptions {
  store: Store;
  index: MeshIndex;
  registry: Registry;
  replica: string;
  heartbeatMs: number;
  leaseMs: number;
  metrics: ControlMetrics;
  /** Where the proxies' golden-signal summaries go, and how often they send one. */
  stats: SignalWindow;
  statsIntervalMs: number;
  log: Logger;
  /** The mesh CA's trust message (bundle and active root), sent on connect and on every change. */
  trust?: () => string | undefined;
}

export class PushServer {
  private readonly sessions = new Map<string, Session>();
  private readonly views = new Map<string, ViewState>();
  private readonly byDep = new Map<string, Set<ViewState>>();
  private readonly taps = new Map<string, ControlTap>();
  private tapSeq = 0;
  private flushScheduled = false;
  private allDirty = false;
  private readonly timer: NodeJS.Timeout;
  private readonly warmup: Warmup;

  constructor(private readonly o: PushServerOptions) {
    this.timer = setInterval(() => this.checkHeartbeats(), Math.max(50, Math.floor(o.heartbeatMs / 2)));
    this.timer.unref();
    this.warmup = new Warmup({ log: o.log, onEnd: () => this.releaseHeld(), gauge: (v) => o.metrics.warmup.set(v) });
    o.metrics.warmup.set(0);
  }

  /** Starts a warm-up of `durationMs` (see warm-up.ts); `why` goes to the log. */
  startWarmup(durationMs: number, why: string): void {
    this.warmup.start(durationMs, why);
  }

  close(): void {
    clearInterval(this.timer);
    this.warmup.stop();
    for (const s of this.sessions.values()) this.end(s, 'the control plane is shutting down');
  }

  get connected(): number {
    return this.sessions.size;
  }

  get openTaps(): number {
    return this.taps.size;
  }

  /**
   * Starts a tap on every proxy connected to this replica (each filters its own events) and on those that connect
   * while it is open. Returns what stops it, or an Error when this replica already runs MAX_TAPS.
   */
  openTap(filter: TapFilter, sink: TapSink): (() => void) | Error {
    if (this.taps.size >= MAX_TAPS) return new Error(`this control plane already serves ${MAX_TAPS} taps; close one or try again later`);
    const t: ControlTap = { id: `${this.o.replica}-${++this.tapSeq}`, filter, sink };
    this.taps.set(t.id, t);
    const start = encodeMessage({ type: 'tap', id: t.id, action: 'start', filter });
    for (const s of this.sessions.values()) s.sendNow(start);
    return () => {
      if (!this.taps.delete(t.id)) return;
      const stop = encodeMessage({ type: 'tap', id: t.id, action: 'stop', filter: {} });
      for (const s of this.sessions.values()) s.sendNow(stop);
    };
  }

  /** Store changes (already applied to the index): mark the views they touch and push soon. */
  changed(changes: Changes): void {
    if (changes.global || changes.hosts) this.allDirty = true;
    else {
      for (const svc of changes.services) {
        const views = this.byDep.get(svc);
        if (views !== undefined) for (const v of views) v.dirty = true;
      }
    }
    this.scheduleFlush();
  }

  /** A new config stream (POST /api/v1/stream over HTTP/2), already authenticated as `principal`. */
  accept(req: Http2ServerRequest, res: Http2ServerResponse, principal: Principal): void {
    const decoder = new LineDecoder(MAX_PROXY_MESSAGE_BYTES);
    let session: Session | null = null;
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    let failed = false;
    const fail = (code: string, message: string) => {
      failed = true;
      res.end(encodeMessage({ type: 'error', code, message }));
      if (session !== null) this.drop(session);
    };
    req.on('data', (chunk: Buffer) => {
      if (failed) return; // the rest of a refused stream is read and dropped
      let lines: string[];
      try {
        lines = decoder.push(chunk);
      } catch (err) {
        fail('bad-message', (err as Error).message);
        return;
      }
      for (const line of lines) {
        if (line.length === 0 || failed) continue;
        const m = parseProxyMessage(line);
        if (m instanceof Error) {
          fail('bad-message', m.message);
          return;
        }
        if (session === null) {
          if (m.type !== 'hello') {
            fail('bad-message', 'the first message must be hello');
            return;
          }
          if (principal.role === 'proxy' && (principal.service !== m.service || principal.namespace !== m.namespace)) {
            fail('forbidden', `the join token is for service ${principal.namespace}/${principal.service}, not ${m.namespace}/${m.service}`);
            return;
          }
          session = this.hello(m, req, res);
        } else {
          this.message(session, m);
        }
      }
    });
    const closed = () => {
      if (session !== null) this.drop(session);
    };
    req.on('close', closed);
    res.on('close', closed);
    req.on('error', closed);
  }

  private hello(m: Extract<ProxyMessage, { type: 'hello' }>, req: Http2ServerRequest, res: Http2ServerResponse): Session {
    const old = this.sessions.get(m.proxyId);
    if (old !== undefined) this.end(old, 'replaced by a new stream from the same proxy');
    const s = new Session(m.proxyId, m.service, m.namespace, req.socket?.remoteAddress ?? null, res);
    s.servesConfig = m.version !== undefined;
    this.sessions.set(s.proxyId, s);
    this.o.metrics.connectedProxies.set(this.sessions.size);
    s.send(encodeMessage({ type: 'welcome', replica: this.o.replica, heartbeatMs: this.o.heartbeatMs, leaseMs: this.o.leaseMs, statsIntervalMs: this.o.statsIntervalMs }));
    const trust = this.o.trust?.();
    if (trust !== undefined) s.sendTrust(trust);
    for (const n of m.subscribe) s.subscriptions.add(n.toLowerCase());
    if (m.endpoint !== undefined) {
      s.endpoint = { address: m.endpoint.address, port: m.endpoint.port, labels: m.endpoint.labels };
      void this.register(s, m.endpoint.ready, m.endpoint.appPort);
    }
    for (const t of this.taps.values()) s.sendNow(encodeMessage({ type: 'tap', id: t.id, action: 'start', filter: t.filter }));
    this.o.log.info('proxy connected', { proxyId: s.proxyId, service: s.service, namespace: s.namespace, version: m.version ?? null });
    this.attach(s);
    return s;
  }

  private async register(s: Session, ready: boolean, appPort: number | undefined): Promise<void> {
    if (s.endpoint === null) return;
    s.ready = ready;
    s.appPort = appPort;
    try {
      await this.o.registry.register({ service: s.service, namespace: s.namespace, address: s.endpoint.address, port: s.endpoint.port, labels: s.endpoint.labels, ready, ...(appPort !== undefined ? { appPort } : {}), proxyId: s.proxyId, replica: this.o.replica });
      s.registered = true;
    } catch (err) {
      // The proxy still gets its config; the registration is retried on its next heartbeat.
      this.o.log.warn('could not register an endpoint; retrying on the next heartbeat', { proxyId: s.proxyId, reason: (err as Error).message });
    }
  }

  private message(s: Session, m: ProxyMessage): void {
    s.lastContact = Date.now();
    this.o.registry.renew(s.proxyId);
    switch (m.type) {
      case 'heartbeat':
        if (!s.registered && s.endpoint !== null) void this.register(s, s.ready, s.appPort);
        return;
      case 'ack':
        if (m.version === s.sentVersion) {
          s.ackedVersion = m.version;
          s.nack = null;
          this.o.metrics.pushes.inc(['ack']);
          if (s.sentAt > 0) this.o.metrics.pushDuration.child().observe((Date.now() - (s.view?.changedAt || s.sentAt)) / 1000);
        }
        return;
      case 'nack':
        s.nack = { version: m.version, reason: m.reason, at: new Date().toISOString() };
        this.o.metrics.pushes.inc(['nack']);
        this.o.log.warn('proxy rejected a config version; it keeps serving its last good one', { proxyId: s.proxyId, service: s.service, version: m.version, reason: m.reason });
        return;
      case 'subscribe': {
        let added = false;
        for (const n of m.names) {
          const name = n.toLowerCase();
          if (!s.subscriptions.has(name)) {
            s.subscriptions.add(name);
            added = true;
          }
        }
        if (added) this.attach(s);
        return;
      }
      case 'register':
        s.endpoint = { address: m.endpoint.address, port: m.endpoint.port, labels: m.endpoint.labels };
        void this.register(s, m.endpoint.ready, m.endpoint.appPort);
        return;
      case 'ready':
        void this.o.registry.setReady(s.proxyId, m.ready).catch((err: Error) => this.o.log.warn('could not record readiness', { proxyId: s.proxyId, reason: err.message }));
        return;
      case 'tap-events': {
        const t = this.taps.get(m.id);
        // Events of a tap that ended meanwhile (the stop crossed them): make sure that proxy stops it.
        if (t === undefined) s.sendNow(encodeMessage({ type: 'tap', id: m.id, action: 'stop', filter: {} }));
        else {
          // A proxy speaks for itself only: the events carry the name of the stream they came on.
          for (const ev of m.events) ev.proxy = s.proxyId;
          t.sink(m.events, m.dropped, s.proxyId);
        }
        return;
      }
      case 'stats':
        this.o.stats.record(s.service, s.namespace, m);
        return;
      case 'goodbye':
        s.closed = true;
        void this.o.registry.deregister(s.proxyId).catch(() => {});
        this.drop(s);
        s.res.end();
        return;
      case 'identity':
        s.cert = { notAfter: m.notAfter, issuedAt: m.issuedAt, root: m.root, trustedRoots: m.trustedRoots };
        return;
      case 'hello':
        return;
    }
  }

  /** The trust bundle changed (a root added, activated or removed): every connected proxy gets it now. */
  trustChanged(): void {
    const trust = this.o.trust?.();
    if (trust === undefined) return;
    for (const s of this.sessions.values()) s.sendTrust(trust);
  }

  /** Puts the session on the view for its (service, subscriptions) and sends that view if it differs from what it has. */
  private attach(s: Session): void {
    const subs = [...s.subscriptions].sort();
    const key = `${s.namespace}/${s.service}|${subs.join(',')}`;
    if (s.view?.key === key) return;
    if (s.view !== null) this.leaveView(s);
    let view = this.views.get(key);
    if (view === undefined) {
      view = new ViewState(key, s.service, s.namespace, subs);
      this.views.set(key, view);
    }
    view.sessions.add(s);
    s.view = view;
    if (view.dirty) this.refresh(view, Date.now());
    this.deliver(s);
  }

  private leaveView(s: Session): void {
    const view = s.view;
    if (view === null) return;
    view.sessions.delete(s);
    s.view = null;
    if (view.sessions.size === 0) {
      this.views.delete(view.key);
      for (const d of view.deps) this.byDep.get(d)?.delete(view);
    }
  }

  /** Recomputes a view; returns whether its content changed. */
  private refresh(view: ViewState, changedAt: number): boolean {
    view.dirty = false;
    const v = computeView(this.o.index, { service: view.service, namespace: view.namespace, subscriptions: view.subscriptions });
    for (const d of view.deps) if (!v.deps.has(d)) this.byDep.get(d)?.delete(view);
    for (const d of v.deps) {
      let set = this.byDep.get(d);
      if (set === undefined) this.byDep.set(d, (set = new Set()));
      set.add(view);
    }
    view.deps = v.deps;
    view.endpoints = v.endpoints;
    const resources = resourcesJson(v.resources);
    const unresolved = JSON.stringify(v.unresolved);
    const body = resources + '|' + unresolved;
    if (body === view.body) return false;
    view.body = body;
    view.version = this.o.store.revision();
    view.unresolved = v.unresolved.length;
    view.changedAt = changedAt;
    view.message = configMessage(view.version, resources, unresolved);
    return true;
  }

  private deliver(s: Session): void {
    const view = s.view;
    if (view === null || view.body === s.sentBody) {
      s.held = null;
      return;
    }
    if (s.servesConfig && this.warmup.active) {
      const reason = holdReason(view, s.sentEndpoints, `${s.namespace}/${s.service}`);
      if (reason !== null) {
        if (s.held === null) {
          this.o.metrics.pushesHeld.inc();
          this.o.log.info('warm-up: holding back a config; the proxy keeps serving the one it has', { proxyId: s.proxyId, service: s.service, version: view.version, reason, releaseInMs: this.warmup.remainingMs() });
        }
        s.held = { reason, since: s.held?.since ?? Date.now() };
        return;
      }
    }
    s.held = null;
    s.sentEndpoints = view.endpoints;
    s.sentBody = view.body;
    s.sentVersion = view.version;
    s.sentAt = Date.now();
    s.send(view.message);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    const started = Date.now();
    const all = this.allDirty;
    this.allDirty = false;
    for (const view of this.views.values()) {
      if (!all && !view.dirty) continue;
      if (this.refresh(view, started)) for (const s of view.sessions) this.deliver(s);
    }
  }

  /** The warm-up is over: every held proxy gets its view as it is now. */
  private releaseHeld(): void {
    let released = 0;
    for (const s of this.sessions.values()) {
      if (s.held === null) continue;
      released++;
      this.deliver(s);
    }
    this.o.log.info('warm-up over: configs go to every proxy as usual', { released });
  }

  private checkHeartbeats(): void {
    const limit = Date.now() - this.o.leaseMs;
    for (const s of this.sessions.values()) {
      if (s.lastContact < limit) this.end(s, `no message for ${this.o.leaseMs} ms`);
    }
  }

  private end(s: Session, why: string): void {
    this.drop(s);
    try {
      s.res.end(encodeMessage({ type: 'error', code: 'closed', message: why }));
    } catch {
      /* the stream is already gone */
    }
  }

  private drop(s: Session): void {
    if (this.sessions.get(s.proxyId) === s) {
      this.sessions.delete(s.proxyId);
      this.o.metrics.connectedProxies.set(this.sessions.size);
      this.o.registry.detach(s.proxyId);
      if (!s.closed) this.o.log.info('proxy disconnected', { proxyId: s.proxyId, service: s.service });
    }
    s.closed = true;
    this.leaveView(s);
  }

  status(): ProxyStatus[] {
    return [...this.sessions.values()].map((s) => ({
      proxyId: s.proxyId,
      service: s.service,
      namespace: s.namespace,
      address: s.address,
      endpoint: s.endpoint,
      replica: this.o.replica,
      connected: !s.closed,
      connectedAt: s.connectedAt.toISOString(),
      lastContact: new Date(s.lastContact).toISOString(),
      subscriptions: [...s.subscriptions].sort(),
      sentVersion: s.sentVersion,
      ackedVersion: s.ackedVersion,
      nack: s.nack,
      state: s.sentVersion === null ? 'NONE' : s.nack !== null && s.nack.version === s.sentVersion ? 'NACK' : s.ackedVersion === s.sentVersion ? 'ACK' : 'PENDING',
      ...(s.held !== null ? { heldBack: { reason: s.held.reason, since: new Date(s.held.since).toISOString(), releaseInMs: this.warmup.remainingMs() } } : {}),
      ...(s.cert !== null ? { certNotAfter: s.cert.notAfter, certIssuedAt: s.cert.issuedAt, certRoot: s.cert.root, trustedRoots: s.cert.trustedRoots } : {}),
    }));
  }
}
