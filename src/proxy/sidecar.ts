// The sidecar: loads config and identity, assembles the outbound, binding and inbound stacks, listens, swaps config
// live, and drains gracefully. This file only wires; each concern lives in its own module.

import { performance } from 'node:perf_hooks';
import { watch, type FSWatcher } from 'node:fs';
import { dirname, basename, resolve } from 'node:path';
import { hostname } from 'node:os';
import type { Server, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import net from 'node:net';
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import { httpExchangeChannel, tunnelChannel } from '../core/diagnostics.js';
import { MycelError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { formatProblem } from '../api/v1alpha1/load.js';
import { isPathProblem, normalizeRequestPath } from '../security/request-path.js';
import { parseSpiffeId } from '../security/spiffe.js';
import { AccessLog } from '../telemetry/access-log.js';
import { ProxyMetrics } from '../telemetry/proxy-metrics.js';
import { TapHub } from '../telemetry/tap.js';
import { TapRelay } from '../telemetry/tap-relay.js';
import { GoldenSignalsRecorder } from '../telemetry/golden-signals.js';
import { Tracer, tracesUrl, type TraceTarget } from '../telemetry/tracer.js';
import type { OtlpPost } from '../telemetry/otlp-exporter.js';
import { ControlTrustError, type ControlTrust } from '../security/control-trust.js';
import type { ConfigProblem } from '../api/v1alpha1/load.js';
import { ControlConfigSource } from './config/control-source.js';
import { FileConfigSource } from './config/file-source.js';
import type { ProxyPlan } from './config/plan.js';
import { createAdminServer } from './admin/server.js';
import { createInboundServer, peerIdentityOf, peerServiceOf } from './inbound/accept.js';
import { ForwardToApp } from './inbound/forward.js';
import { authorizeLayer, servicePort } from './inbound/authorize.js';
import { peerIdentityLayer, PEER_IDENTITY_HEADER, XFCC_HEADER } from './inbound/identity.js';
import { normalizePathLayer } from './inbound/normalize-path.js';
import type { ListenAddress } from '../core/listen-address.js';
import { acceptBound, acceptExplicit, createBindingServer, createOutboundServer, listen } from './outbound/accept.js';
import { createTransparentOutboundServer, type TransparentOutboundHooks } from './transparent/transparent-outbound.js';
import { listenCompanion, listenInboundDualStack, loopbackCompanion } from './transparent/dual-stack.js';
import { balanceLayer } from './outbound/concrete.js';
import { Destinations } from './outbound/destinations.js';
import { discoverLayer, type Binding, type PlanHolder } from './outbound/discover.js';
import { meshHealthConnect } from './outbound/health-connect.js';
import { logicalLayer } from './outbound/logical.js';
import { deadlineLayer } from './outbound/deadline.js';
import { retryLayer, RetryRegistry, type RetryLayerOptions } from './outbound/retry.js';
import { inboundRateLimitLayer } from './inbound/rate-limit.js';
import { traceLayer } from './layers/trace/index.js';
import { ForwardToEndpoint } from './outbound/endpoint.js';
import { handleConnect, handleUpgrade, type TunnelDeps, type TunnelRecord } from './outbound/tunnel.js';
import type { HttpExchange } from './stack/exchange.js';
import { createErrorResponder } from './stack/error-response.js';
import { buildStack } from './stack/service.js';
import { ClientCache } from './transport/client-cache.js';
import { requestHeaderList } from './transport/h1/server-response.js';
import { H1Pool } from './transport/h1/pool.js';
import { H2Client } from './transport/h2/client.js';
import { HttpFrontend, refuseRaw } from './transport/http-frontend.js';
import { splice } from './transport/splice.js';
import { buildIdentity, IdentityStore, readIdentityFiles } from './transport/tls/identity.js';
import { CertificateRefusedError, MeshCertificates } from './identity/mesh-certificates.js';
import { relayUpgrade } from './transport/upgrade.js';
import { withoutField } from './stack/http-types.js';

/** Retries in flight take the destination breaker's max-retries slots (TrafficPolicy connectionPool.maxRetries). */
const RETRY_OPTIONS: RetryLayerOptions = { retrySlots: (service) => service.runtime?.breaker.retries };

export interface UpstreamBindingOption {
  service: string;
  servicePort?: number;
  listen: ListenAddress;
}

/** Where config comes from: resource files, or a control plane. */
export interface ConfigSource {
  load(): Promise<ProxyPlan>;
  on(event: 'plan', listener: (plan: ProxyPlan) => void): unknown;
  on(event: 'rejected', listener: (problems: ConfigProblem[]) => void): unknown;
  reload(): Promise<void>;
  watch?(): void;
  check: (plan: ProxyPlan) => string | undefined;
  close(): void | Promise<void>;
}

export interface ControlOptions {
  url: string;
  /** More replicas' URLs: the stream moves to the next one when it breaks (`--control URL1,URL2`). */
  alternates?: string[];
  token: string;
  /** Verifies the control plane's certificate (https) and carries this proxy's client certificate. */
  trust: ControlTrust;
  namespace: string;
  /** The address other sidecars reach this one's inbound listener on. */
  advertise: string;
  labels: Record<string, string>;
  stateDir: string;
  proxyId: string;
}

export interface SidecarOptions {
  service: string;
  appPort: number;
  configFiles: string[];
  /** Take config from a control plane instead of files. */
  control?: ControlOptions;
  inbound: ListenAddress;
  outbound: ListenAddress;
  admin: ListenAddress;
  upstreams: UpstreamBindingOption[];
  /** Workload identity from flags; otherwise the mesh CA (with a control plane) or MeshConfig spec.identity. */
  identityFiles?: { cert: string; key: string; ca: string };
  /**
   * Transparent mode: the outbound listener takes iptables-redirected connections and sends each by its original
   * destination (the rules themselves are installed by the CLI, see transparent/iptables-apply.ts).
   */
  transparent?: boolean;
  /** The zone this instance runs in (its `zone` label): callers prefer endpoints of their own zone. */
  zone?: string;
  log: Logger;
}

export interface SidecarAddresses {
  inbound: ListenAddress;
  outbound: ListenAddress;
  admin: ListenAddress;
  upstreams: Record<string, ListenAddress>;
}

/** Thrown for problems the operator must fix before the sidecar can start (CLI exit code 2). */
export class SidecarConfigError extends Error {}

export class Sidecar implements PlanHolder {
  private plan: ProxyPlan;
  private readonly metrics = new ProxyMetrics();
  /** Golden-signal summaries for the control plane (only with one). */
  private readonly golden: GoldenSignalsRecorder | null;
  /** Opt-in access log on stdout (MeshConfig spec.telemetry.accessLog). */
  private readonly accessLog = new AccessLog((line) => void process.stdout.write(line));
  /** Live taps (admin GET /tap, and the control plane's over the config stream); subscribed only while one is open. */
  readonly taps: TapHub;
  /** Spans of sampled requests, exported to the control plane and the MeshConfig's OTLP collector. */
  private readonly tracer: Tracer;
  /** Retry budgets per destination, shared by the outbound and binding stacks, kept across config changes. */
  private readonly retries = new RetryRegistry();
  private readonly frontends: HttpFrontend[] = [];
  private readonly listeners: Server[] = [];
  private inbound!: Server;
  private adminServer!: HttpServer;
  private readonly clients: ClientCache;
  private readonly appH1: H1Pool;
  private readonly appH2: H2Client;
  private readonly identity: IdentityStore;
  /** Balancers, health and breakers of the destinations, kept across config changes. */
  private readonly destinations: Destinations;
  private identityWatchers: FSWatcher[] = [];
  /** The mesh CA's certificates for this proxy (control-plane mode without certificate files). */
  private meshCerts: MeshCertificates | null = null;
  private tunnelsOpen = 0;
  private ready = false;
  private drainPromise: Promise<void> | null = null;
  private lastRejected: { at: string; problems: string[] } | null = null;
  private appliedAt = new Date().toISOString();
  addresses!: SidecarAddresses;
  /** Called once the drain is over; the CLI exits the process there. */
  onStopped: () => void = () => {};

  private constructor(
    private readonly options: SidecarOptions,
    private readonly source: ConfigSource,
    plan: ProxyPlan,
    identity: IdentityStore,
    private readonly identityFiles: { cert: string; key: string; ca: string } | null,
  ) {
    this.plan = plan;
    this.identity = identity;
    this.taps = new TapHub(options.control?.proxyId ?? `${options.service}-${hostname()}-${process.pid}`, () => this.identity.current.spiffeId);
    this.golden = source instanceof ControlConfigSource ? new GoldenSignalsRecorder() : null;
    if (this.golden !== null) (source as ControlConfigSource).stats = this.golden;
    const t = plan.mesh.timeouts;
    this.clients = new ClientCache({
      identity,
      connectTimeoutMs: t.connectMs,
      idleTimeoutMs: t.idleMs,
      poolIdleMs: 30_000,
      keepalive: () => this.plan.mesh.keepalive,
      onKeepaliveTimeout: (url, timeoutMs) => options.log.warn('peer sidecar did not answer an HTTP/2 keepalive PING; connection closed', { peer: url, timeoutMs }),
    });
    this.appH1 = new H1Pool({
      connect: () => ({ socket: net.connect({ host: '127.0.0.1', port: options.appPort, noDelay: true }), event: 'connect' }),
      connectTimeoutMs: t.connectMs,
      idleTimeoutMs: t.idleMs,
      poolIdleMs: 4_000, // below Node's default keep-alive timeout (5 s), the most common app server here
    });
    this.appH2 = new H2Client({
      url: `http://127.0.0.1:${options.appPort}`,
      createConnection: () => net.connect({ host: '127.0.0.1', port: options.appPort, noDelay: true }),
      connectTimeoutMs: t.connectMs,
      idleTimeoutMs: t.idleMs,
    });
    this.respondError = createErrorResponder(options.log, options.service);
    this.tunnels = this.makeTunnelDeps();
    this.tracer = this.makeTracer();
    this.destinations = this.makeDestinations();
    this.destinations.attach(plan);
  }

  get current(): ProxyPlan {
    return this.plan;
  }

  /** With a control plane: the first request to an unknown host asks it (bounded wait). */
  discover?: (host: string) => Promise<boolean>;

  static async start(options: SidecarOptions): Promise<Sidecar> {
    let source: ConfigSource;
    let control: ControlConfigSource | null = null;
    let meshCerts: MeshCertificates | null = null;
    if (options.control !== undefined && options.identityFiles === undefined) {
      // The certificate comes first: the config stream then authenticates with it, not with the (maybe single-use) token.
      const certs = new MeshCertificates({ url: options.control.url, ...(options.control.alternates !== undefined ? { alternates: options.control.alternates } : {}), token: options.control.token, trust: options.control.trust, namespace: options.control.namespace, service: options.service, stateDir: options.control.stateDir, log: options.log });
      try {
        await certs.obtain();
      } catch (err) {
        if (err instanceof CertificateRefusedError) throw new SidecarConfigError(`${err.message}\n  fix: use a join token for this service (mycel token create --service ${options.service})`);
        throw err;
      }
      meshCerts = certs;
    }
    if (options.control !== undefined) {
      const c = options.control;
      // Certificates from files: nothing has fetched the pinned root yet (the mesh CA path does it above).
      if (meshCerts === null) {
        await c.trust.bootstrap(c.url).catch((err: unknown) => {
          if (err instanceof ControlTrustError) throw new SidecarConfigError(err.message);
          options.log.warn('cannot fetch the mesh roots from the control plane yet', { reason: (err as Error).message });
        });
      }
      control = new ControlConfigSource({
        url: c.url,
        ...(c.alternates !== undefined ? { alternates: c.alternates } : {}),
        token: c.token,
        proxyId: c.proxyId,
        service: options.service,
        namespace: c.namespace,
        // The inbound port is only known after listening; the registration is sent with the real one (see below).
        endpoint: undefined,
        subscribe: options.upstreams.map((u) => u.service),
        stateDir: c.stateDir,
        log: options.log,
        tls: () => c.trust.tlsOptions(),
        prepare: (url) => c.trust.bootstrap(url),
        // Over TLS the workload certificate is the client certificate: no header then. In clear text it is proved in headers.
        ...(meshCerts !== null ? { authorize: () => (c.url.startsWith('https:') && meshCerts.report() !== null ? {} : meshCerts.authorization()), identity: () => meshCerts.report() } : {}),
      });
      if (meshCerts !== null) control.on('trust', (bundle, activeRoot) => meshCerts.trust(bundle, activeRoot));
      source = control;
    } else {
      source = new FileConfigSource(options.configFiles, options.service);
    }
    const plan = await source.load(); // ConfigInvalidError propagates: the CLI prints it and exits 2
    const files = meshCerts !== null ? null : (options.identityFiles ?? plan.mesh.identityFiles ?? null);
    let identity: IdentityStore;
    if (meshCerts !== null) {
      identity = new IdentityStore(buildIdentity(meshCerts.material));
    } else {
      if (files === null) {
        throw new SidecarConfigError('no workload identity: pass --cert, --key and --ca, or set spec.identity in the MeshConfig (make throwaway ones with `mycel dev-certs`)');
      }
      try {
        identity = new IdentityStore(buildIdentity(await readIdentityFiles(files)));
      } catch (err) {
        throw new SidecarConfigError(`workload identity from ${files.cert}, ${files.key}, ${files.ca}: ${(err as Error).message}`);
      }
    }
    const sidecar = new Sidecar(options, source, plan, identity, files);
    sidecar.meshCerts = meshCerts;
    const mismatch = sidecar.checkPlan(plan);
    if (mismatch !== undefined) throw new SidecarConfigError(mismatch);
    source.check = (next) => sidecar.checkPlan(next);
    if (control !== null) {
      sidecar.discover = (host) => control.discover(host, 2000);
      const relay = new TapRelay(sidecar.taps, (id, events, dropped) => control.sendTapEvents(id, events, dropped));
      control.on('tap', (action, id, filter) => (action === 'start' ? relay.start(id, filter) : relay.stop(id)));
      control.on('disconnected', () => relay.stopAll());
      for (const [id, filter] of control.activeTaps) relay.start(id, filter); // started while the first config loaded
    }
    await sidecar.listenAll();
    source.on('plan', (p) => sidecar.apply(p));
    source.on('rejected', (problems) => sidecar.rejected(problems.map(formatProblem)));
    source.watch?.();
    sidecar.watchIdentity();
    sidecar.followMeshCertificates(control);
    if (control !== null && options.control !== undefined) {
      // The endpoint is registered once the inbound port is known (it may have been port 0).
      control.register({ address: options.control.advertise, port: sidecar.addresses.inbound.port, labels: options.control.labels, ready: true, appPort: options.appPort });
    }
    sidecar.logBrokenPolicies(plan);
    sidecar.ready = true;
    options.log.info('sidecar ready', { service: options.service, configVersion: plan.version, identity: identity.current.spiffeId, ...flatAddresses(sidecar.addresses) });
    return sidecar;
  }

  // ---- assembly ---------------------------------------------------------------------------------------------------

  private readonly observe = (ex: HttpExchange): void => {
    if (httpExchangeChannel.hasSubscribers) httpExchangeChannel.publish(ex);
  };

  private makeDestinations(): Destinations {
    const log = this.options.log;
    return new Destinations({
      localZone: this.options.zone,
      healthConnect: (rt) => meshHealthConnect(this.identity, rt, this.plan.mesh.timeouts.connectMs),
      onEject: (rt, endpoint, forMs, times) => {
        this.metrics.outlierEjections.inc([rt.name]);
        log.warn('endpoint ejected by outlier detection', { destination: rt.name, endpoint, forMs: Math.round(forMs), times });
      },
      onHealthChange: (rt, ep, healthy, detail) => log.info(healthy ? 'endpoint healthy again' : 'endpoint failed its health checks', { destination: rt.name, endpoint: ep.key, detail }),
    });
  }

  private readonly respondError: ReturnType<typeof createErrorResponder>;

  private makeTracer(): Tracer {
    const o = this.options;
    const identity = this.identity;
    return new Tracer({
      source: { service: o.service, namespace: o.control?.namespace ?? this.plan.self?.namespace ?? 'default', identity: () => identity.current.spiffeId },
      onDropped: (target, n, reason) => this.metrics.traceSpansDropped.inc([target, reason], n),
      onExported: (target, n) => this.metrics.traceSpansExported.inc([target], n),
      log: o.log,
    });
  }

  /** Export to the control plane (when there is one) and to the configured collector; neither: tracing off. */
  private configureTracing(plan: ProxyPlan): void {
    const targets: TraceTarget[] = [];
    const c = this.options.control;
    if (c !== undefined) targets.push({ name: 'control-plane', url: tracesUrl(c.url), post: c.trust.fetch as OtlpPost });
    if (plan.mesh.tracing.otlpEndpoint !== null) targets.push({ name: 'otlp', url: tracesUrl(plan.mesh.tracing.otlpEndpoint) });
    this.tracer.configure(plan.mesh.tracing.samplingPercent, targets);
  }

  /** Shared by every tunnel (outbound CONNECT, WebSocket, TCP bindings; inbound TCP and upgrades). */
  private readonly tunnels: TunnelDeps;

  private makeTunnelDeps(): TunnelDeps {
    return {
      plans: this,
      identity: this.identity,
      log: this.options.log,
      self: this.options.service,
      opened: (rec) => {
        this.tunnelsOpen++;
        if (tunnelChannel.hasSubscribers) tunnelChannel.publish({ phase: 'open', ...rec });
      },
      closed: (rec) => {
        this.tunnelsOpen--;
        if (tunnelChannel.hasSubscribers) tunnelChannel.publish({ phase: 'close', ...rec });
      },
    };
  }

  /** The HTTP side of an upstream binding: the outbound stack with the binding's service fixed. */
  private bindingFrontend(binding: Binding): HttpFrontend {
    const o = this.options;
    const log = o.log;
    const stack = buildStack(new ForwardToEndpoint(this.clients, this), [traceLayer(this.tracer), discoverLayer(this, binding, o.service), logicalLayer(log), deadlineLayer(), retryLayer(this.retries, RETRY_OPTIONS), balanceLayer()]);
    const front = new HttpFrontend('outbound', this.plan.mesh, {
      service: stack,
      observer: this.observe,
      respondError: this.respondError,
      decorate: setClientAddress,
      onUpgrade: (req, socket, head) => handleUpgrade(this.tunnels, req, socket, head, binding),
    }, log);
    this.frontends.push(front);
    return front;
  }

  /** Transparent mode: one binding frontend per destination service and port, made on first use. */
  private readonly transparentFrontends = new Map<string, HttpFrontend>();

  private transparentFrontend(binding: Binding): HttpFrontend {
    const key = `${binding.service}|${binding.servicePort ?? ''}`;
    let front = this.transparentFrontends.get(key);
    if (front === undefined) {
      front = this.bindingFrontend(binding);
      this.transparentFrontends.set(key, front);
    }
    return front;
  }

  private async listenAll(): Promise<void> {
    const o = this.options;
    const log = o.log;
    const respondError = this.respondError;
    // Metrics are always on; the benchmark turns them off for one row to measure what they cost (bench/README.md).
    if (process.env.MYCEL_BENCH_NO_METRICS !== '1') this.metrics.subscribe();
    this.golden?.subscribe();
    this.accessLog.configure(this.plan.mesh.accessLog.enabled, this.plan.mesh.accessLog.format);
    this.configureTracing(this.plan);
    this.metrics.configVersion.set(this.plan.version);
    this.metrics.certExpiry.set(Math.floor(this.identity.current.notAfter.getTime() / 1000));
    const tunnels = this.tunnels;
    const mesh = this.plan.mesh;

    // Outbound: app -> mesh.
    const outboundStack = buildStack(new ForwardToEndpoint(this.clients, this), [traceLayer(this.tracer), discoverLayer(this, null, o.service), logicalLayer(log), deadlineLayer(), retryLayer(this.retries, RETRY_OPTIONS), balanceLayer()]);
    const outFront = new HttpFrontend('outbound', mesh, {
      service: outboundStack,
      observer: this.observe,
      respondError,
      decorate: setClientAddress,
      onConnect: (req, socket, head) => handleConnect(tunnels, req, socket, head),
      onUpgrade: (req, socket, head) => handleUpgrade(tunnels, req, socket, head, null),
    }, log);
    this.frontends.push(outFront);
    const transparentHooks: TransparentOutboundHooks = {
      plans: this,
      tunnels,
      log,
      isDraining: () => outFront.isDraining,
      explicit: (socket) => acceptExplicit(outFront, this.plan.mesh.timeouts.requestHeadersMs, socket),
      bound: (socket, binding) => acceptBound(this.transparentFrontend(binding), binding, this, tunnels, log, socket),
    };
    const outServer =
      o.transparent === true
        ? createTransparentOutboundServer(transparentHooks, mesh.limits.maxConnections)
        : createOutboundServer(outFront, mesh.limits.maxConnections, mesh.timeouts.requestHeadersMs);
    this.listeners.push(outServer);
    const outboundAddr = await listen(outServer, o.outbound);
    // Redirected IPv6 connections arrive on ::1 (IPv4 ones on 127.0.0.1): the same listener on the other loopback.
    const companion = o.transparent === true ? loopbackCompanion(outboundAddr.host) : null;
    if (companion !== null) {
      const server = createTransparentOutboundServer(transparentHooks, mesh.limits.maxConnections);
      if ((await listenCompanion(server, { host: companion, port: outboundAddr.port })) !== null) this.listeners.push(server);
      else log.info('no transparent outbound listener on the other loopback: that address family is off here', { address: companion });
    }

    // Upstream bindings: a local port per service.
    const upstreams: Record<string, ListenAddress> = {};
    for (const u of o.upstreams) {
      const binding: Binding = { service: u.service, servicePort: u.servicePort };
      const front = this.bindingFrontend(binding);
      const server = createBindingServer(front, binding, this, tunnels, log);
      this.listeners.push(server);
      upstreams[u.servicePort === undefined ? u.service : `${u.service}:${u.servicePort}`] = await listen(server, u.listen);
    }

    // Inbound: mesh -> app.
    const inboundStack = buildStack(new ForwardToApp(this.appH1, this.appH2, this, o.service, o.appPort), [
      traceLayer(this.tracer),
      peerIdentityLayer(),
      normalizePathLayer(o.service),
      authorizeLayer(this, o.service),
      inboundRateLimitLayer(this, o.service),
    ]);
    const inFront = new HttpFrontend('inbound', mesh, {
      service: inboundStack,
      observer: this.observe,
      respondError,
      decorate: (ex, socket) => {
        ex.peerIdentity = peerIdentityOf(socket);
        ex.source = peerServiceOf(socket);
      },
      onUpgrade: (req, socket, head) => this.inboundUpgrade(req, socket as TLSSocket, head),
    }, log);
    this.frontends.push(inFront);
    this.inbound = createInboundServer({
      identity: this.identity,
      frontend: inFront,
      trustDomain: () => this.plan.mesh.trustDomain,
      handshakeTimeoutMs: mesh.timeouts.connectMs,
      maxConnections: mesh.limits.maxConnections,
      log,
      mode: () => this.plan.mtlsMode,
      onTcp: (socket) => this.inboundTcp(socket),
      onHandshakeError: (reason) => this.metrics.handshakeErrors.inc([reason]),
      onAccepted: (mode) => this.metrics.inboundConnections.inc([mode]),
    });
    this.listeners.push(this.inbound);
    // Transparent: IPv6 connections redirected to the inbound port must find a listener as well.
    const inboundAddr = o.transparent === true ? await listenInboundDualStack(this.inbound, o.inbound) : await listen(this.inbound, o.inbound);

    this.adminServer = createAdminServer({
      ready: () => (this.ready ? { ready: true, reason: '' } : { ready: false, reason: this.drainPromise ? 'draining' : 'starting' }),
      config: () => ({
        service: o.service,
        version: this.plan.version,
        hash: this.plan.hash,
        appliedAt: this.appliedAt,
        identity: this.identity.current.spiffeId,
        certificateExpires: this.identity.current.notAfter.toISOString(),
        lastRejected: this.lastRejected,
        control: this.controlStatus(),
        openTaps: this.taps.open,
        resources: this.plan.resources,
      }),
      endpoints: () => [...this.plan.services.values()].map((s) => ({ service: s.name, namespace: s.namespace, identity: s.identity, external: s.external, ports: s.ports, endpoints: s.endpoints })),
      metrics: () => {
        for (const rt of this.destinations.values()) this.metrics.breakerOpen.set(rt.breaker.open ? 1 : 0, [rt.name]);
        return this.metrics.render();
      },
      taps: this.taps,
      drain: () => void this.drain('admin POST /drain'),
      shutdown: () => void this.drain('admin POST /shutdown'),
    });
    const adminAddr = await listen(this.adminServer as unknown as Server, o.admin);
    this.addresses = { inbound: inboundAddr, outbound: outboundAddr, admin: adminAddr, upstreams };
  }

  /** mycel-tcp on the inbound port: an opaque tunnel to the app's port. */
  private inboundTcp(socket: TLSSocket): void {
    const peer = peerIdentityOf(socket);
    const rec: TunnelRecord = { direction: 'inbound', kind: 'tcp', source: peer === null ? null : parseSpiffeId(peer)?.service ?? null, destination: this.options.service, endpoint: `127.0.0.1:${this.options.appPort}`, error: null, result: null, startTime: performance.now() };
    const deniedBy = this.authorizeTunnel(peer, null, null, null);
    if (deniedBy !== null) {
      // A TCP tunnel has no way to carry a reason: the connection closes before any byte reaches the app.
      this.options.log.warn('request failed', { direction: 'inbound', kind: 'tcp', error: 'denied-by', policy: deniedBy, peer });
      this.metrics.authzDenied.inc([this.options.service, rec.source ?? 'unknown']);
      socket.destroy();
      this.refusedTunnel(rec, new MycelError('denied-by', `${peer ?? 'a caller without a mesh identity'} may not open a TCP tunnel to ${this.options.service}`));
      return;
    }
    const deps = this.tunnels;
    deps.opened(rec);
    const app = net.connect({ host: '127.0.0.1', port: this.options.appPort, allowHalfOpen: true, noDelay: true });
    app.once('error', (err) => {
      this.options.log.warn('tunnel failed', { direction: 'inbound', kind: 'tcp', error: 'connect-failed', reason: err.message });
      socket.destroy();
      rec.error = new MycelError('connect-failed', err.message);
      deps.closed(rec);
    });
    app.once('connect', () => {
      app.removeAllListeners('error');
      splice(socket, app, this.plan.mesh.timeouts.idleMs, (r) => {
        rec.result = r;
        deps.closed(rec);
      });
    });
  }

  /** A tunnel refused before it opened: reported (access log, metrics, tap) like one that failed. */
  private refusedTunnel(rec: TunnelRecord, err: MycelError): void {
    rec.error = err;
    this.tunnels.opened(rec);
    this.tunnels.closed(rec);
  }

  /** WebSocket and other upgrades arriving from a peer sidecar: relayed to the app on a dedicated connection. */
  private inboundUpgrade(req: IncomingMessage, socket: TLSSocket, head: Buffer): void {
    const peer = peerIdentityOf(socket);
    const rec: TunnelRecord = { direction: 'inbound', kind: 'upgrade', source: peer === null ? null : parseSpiffeId(peer)?.service ?? null, destination: this.options.service, endpoint: `127.0.0.1:${this.options.appPort}`, error: null, result: null, startTime: performance.now() };
    const path = normalizeRequestPath(req.url ?? '/');
    if (isPathProblem(path)) {
      refuseRaw(socket, 'bad-request', path.problem);
      this.refusedTunnel(rec, new MycelError('bad-request', path.problem));
      return;
    }
    const headers = withoutField(withoutField(requestHeaderList(req.rawHeaders), PEER_IDENTITY_HEADER), XFCC_HEADER);
    const deniedBy = this.authorizeTunnel(peer, req.method ?? 'GET', path, headers, req.headers.host ?? null);
    if (deniedBy !== null) {
      this.options.log.warn('request failed', { direction: 'inbound', kind: 'upgrade', error: 'denied-by', policy: deniedBy, peer });
      this.metrics.authzDenied.inc([this.options.service, rec.source ?? 'unknown']);
      const why = `${peer ?? 'a caller without a mesh identity'} may not upgrade ${path} on ${this.options.service}`;
      refuseRaw(socket, 'denied-by', why, deniedBy);
      this.refusedTunnel(rec, new MycelError('denied-by', why));
      return;
    }
    const deps = this.tunnels;
    deps.opened(rec);
    if (peer !== null) headers.push(PEER_IDENTITY_HEADER, peer);
    const app = net.connect({ host: '127.0.0.1', port: this.options.appPort, noDelay: true });
    relayUpgrade(req, socket, head, app, { authority: req.headers.host ?? this.options.service, path, headers }, this.plan.mesh.timeouts.idleMs,
      (err) => {
        rec.error = err;
        this.options.log.warn('upgrade failed', { direction: 'inbound', error: err.code, reason: err.message });
        refuseRaw(socket, err.code, err.message);
        deps.closed(rec);
      },
      (_s, r) => {
        rec.result = r;
        deps.closed(rec);
      });
  }

  /** Authorization of a tunnel (TCP: identity and port only) or an upgrade request; null: allowed, else the policy. */
  private authorizeTunnel(peer: string | null, method: string | null, path: string | null, headers: string[] | null, authority: string | null = null): string | null {
    const plan = this.plan;
    if (plan.authz.empty) return null;
    const q = path === null ? -1 : path.indexOf('?');
    return plan.authz.decide({
      principal: peer,
      method,
      path,
      pathEnd: path === null ? 0 : q === -1 ? path.length : q,
      port: servicePort(plan.self, authority),
      headers: headers ?? [],
    });
  }

  // ---- config and identity changes -----------------------------------------------------------------------------

  private apply(plan: ProxyPlan): void {
    this.accessLog.configure(plan.mesh.accessLog.enabled, plan.mesh.accessLog.format);
    this.configureTracing(plan);
    const prev = this.plan;
    this.destinations.attach(plan);
    this.plan = plan;
    this.appliedAt = new Date().toISOString();
    this.metrics.configVersion.set(plan.version);
    for (const f of this.frontends) f.updateSettings(plan.mesh);
    const keep = new Set<string>();
    for (const s of plan.services.values()) for (const e of s.endpoints) keep.add(e.key);
    this.clients.retain(keep);
    this.retries.retain([...plan.services.values()].map((s) => `${s.namespace}/${s.name}`));
    const restartNeeded = JSON.stringify(prev.mesh.limits) !== JSON.stringify(plan.mesh.limits);
    this.logBrokenPolicies(plan);
    this.options.log.info('config applied', { version: plan.version, hash: plan.hash, services: plan.services.size, ...(restartNeeded ? { note: 'changed limits apply to new listeners only; restart the sidecar to apply them everywhere' } : {}) });
  }

  private logBrokenPolicies(plan: ProxyPlan): void {
    for (const b of plan.authz.broken) this.options.log.error('an AuthorizationPolicy could not be compiled; it fails closed', b);
  }

  /**
   * What a valid config must not do to a running sidecar: switch the trust domain away from the one of its own
   * certificate (every mTLS handshake would then fail). Changing it needs new certificates first.
   */
  checkPlan(plan: ProxyPlan): string | undefined {
    const own = parseSpiffeId(this.identity.current.spiffeId)?.trustDomain;
    if (own !== undefined && plan.mesh.trustDomain !== own) {
      return `the config's trust domain "${plan.mesh.trustDomain}" differs from this proxy's identity ${this.identity.current.spiffeId}; issue certificates in the new trust domain before changing it`;
    }
    return undefined;
  }

  private rejected(problems: string[]): void {
    this.metrics.configRejected.inc();
    this.lastRejected = { at: new Date().toISOString(), problems };
    this.options.log.error('config change rejected; the running config stays', { version: this.plan.version, problems });
  }

  /** Renewed certificates and trust bundle changes from the mesh CA go to new handshakes; open connections keep theirs. */
  private followMeshCertificates(control: ControlConfigSource | null): void {
    const certs = this.meshCerts;
    if (certs === null) return;
    certs.on('change', (material) => {
      try {
        const next = buildIdentity(material);
        this.identity.set(next);
        this.metrics.certExpiry.set(Math.floor(next.notAfter.getTime() / 1000));
      } catch (err) {
        this.options.log.error('the mesh CA sent an unusable certificate; keeping the current identity', { reason: (err as Error).message });
      }
      control?.reportIdentity();
    });
    certs.start();
    control?.reportIdentity();
  }

  /** Certificate files replaced on disk (by an operator or a cert manager) are picked up for new handshakes. */
  private watchIdentity(): void {
    const files = this.identityFiles;
    if (files === null) return;
    const wanted = new Set([files.cert, files.key, files.ca].map((f) => resolve(f)));
    let timer: NodeJS.Timeout | null = null;
    const reload = async () => {
      try {
        const next = buildIdentity(await readIdentityFiles(files));
        this.identity.set(next);
        this.metrics.certExpiry.set(Math.floor(next.notAfter.getTime() / 1000));
        this.options.log.info('workload identity reloaded', { identity: next.spiffeId, expires: next.notAfter.toISOString() });
      } catch (err) {
        // Mid-rotation a key may not match its cert yet; the next write triggers another try.
        this.options.log.warn('workload identity files changed but are not usable yet; keeping the current identity', { reason: (err as Error).message });
      }
    };
    for (const dir of new Set([...wanted].map((f) => dirname(f)))) {
      const w = watch(dir, { persistent: false }, (_e, name) => {
        if (name !== null && ![...wanted].some((f) => basename(f) === name.toString())) return;
        if (timer !== null) clearTimeout(timer);
        timer = setTimeout(() => void reload(), 100);
        timer.unref();
      });
      w.on('error', () => {});
      this.identityWatchers.push(w);
    }
  }

  controlStatus(): unknown {
    return this.source instanceof ControlConfigSource ? this.source.status() : null;
  }

  reloadConfig(): Promise<void> {
    return this.source.reload();
  }

  // ---- drain ---------------------------------------------------------------------------------------------------

  private inFlight(): number {
    let n = this.tunnelsOpen;
    for (const f of this.frontends) n += f.inFlight;
    return n;
  }

  /** Not ready, stop accepting, let in-flight requests finish (up to the drain timeout), then close everything. */
  drain(reason: string): Promise<void> {
    if (this.drainPromise !== null) return this.drainPromise;
    this.ready = false;
    const log = this.options.log;
    const timeoutMs = this.plan.mesh.timeouts.drainMs;
    log.info('draining', { reason, inFlight: this.inFlight(), timeoutMs });
    // Deregister first, so that callers stop picking this endpoint while in-flight requests finish.
    const deregistered = this.source instanceof ControlConfigSource ? this.source.close() : Promise.resolve();
    for (const l of this.listeners) l.close();
    for (const f of this.frontends) f.drain();
    this.destinations.stop();
    this.drainPromise = new Promise<void>((resolveDrain) => {
      const started = Date.now();
      const tick = () => {
        const left = this.inFlight();
        if (left === 0 || Date.now() - started >= timeoutMs) {
          if (left > 0) log.warn('drain timeout: closing what is still open', { inFlight: left });
          this.stop();
          log.info('drained', { ms: Date.now() - started });
          // The goodbye to the control plane must leave before the process does (close() bounds this wait), and the
          // last spans get a short chance to go out.
          const spansSent = Promise.race([this.tracer.close(), new Promise<void>((r) => setTimeout(r, 1000).unref())]);
          void Promise.all([deregistered, spansSent]).finally(() => {
            resolveDrain();
            this.onStopped();
          });
          return;
        }
        // Idle keep-alive connections that became idle since the last look close now.
        for (const f of this.frontends) f.drain();
        setTimeout(tick, 25);
      };
      tick();
    });
    return this.drainPromise;
  }

  private stop(): void {
    for (const f of this.frontends) f.destroyAll();
    this.clients.closeAll();
    this.appH1.close();
    this.appH2.close();
    void this.source.close();
    for (const w of this.identityWatchers) w.close();
    this.meshCerts?.close();
    this.metrics.unsubscribe();
    this.golden?.unsubscribe();
    this.accessLog.close();
    this.taps.close();
    this.adminServer.close();
    this.adminServer.closeAllConnections();
  }
}

/** Outbound: the client's address, for RingHash / Maglev on the source address. */
function setClientAddress(ex: HttpExchange, socket: Socket): void {
  ex.clientAddress = socket.remoteAddress ?? null;
}

function flatAddresses(a: SidecarAddresses): Record<string, string> {
  const out: Record<string, string> = { inbound: `${a.inbound.host}:${a.inbound.port}`, outbound: `${a.outbound.host}:${a.outbound.port}`, admin: `${a.admin.host}:${a.admin.port}` };
  for (const [k, v] of Object.entries(a.upstreams)) out[`upstream.${k}`] = `${v.host}:${v.port}`;
  return out;
}
