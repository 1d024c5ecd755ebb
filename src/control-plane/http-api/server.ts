// The control plane's HTTP API on one port (HTTP/2 and HTTP/1.1): health, metrics, the resource API behind the admin
// token (or, read-only, a dashboard session cookie), the proxies' config streams behind their join tokens, and the
// dashboard at `/`.

import { constants } from 'node:crypto';
import http from 'node:http';
import http2, { type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import net from 'node:net';
import type tls from 'node:tls';
import { STREAM_PATH } from '../../api/v1alpha1/stream-messages.js';
import { SYSTEM_NAMESPACE } from '../../api/v1alpha1/cert-auth.js';
import { pinnedToken } from '../../api/v1alpha1/join-token.js';
import { KINDS } from '../../api/v1alpha1/resources.js';
import { DNS_LABEL } from '../../api/v1alpha1/schema-parts.js';
import type { Logger } from '../../core/log.js';
import { BUNDLE_PATH, type FetchLike } from '../../security/control-trust.js';
import { applyResources, deleteResource } from '../apply.js';
import { SINGLE_USE_DEFAULT_TTL_SECONDS, tokenSpent, type Principal, type TokenAuthority } from '../auth/tokens.js';
import type { MeshCa } from '../ca/mesh-ca.js';
import type { RawWindow, SignalWindow } from '../stats/signal-window.js';
import { mergedReport, parseWindow, windowSlots } from '../stats/stats-report.js';
import type { ControlMetrics } from '../metrics.js';
import type { PushServer } from '../push/push-server.js';
import type { Registry } from '../registry/registry.js';
import { askOthers, proxiesOfOthers } from '../replicas.js';
import { StoreError, type Store } from '../store/store.js';
import { serveTap } from '../../telemetry/tap-stream.js';
import { serviceKey, type MeshIndex } from '../translate/mesh-index.js';
import { caRoutes, CERTIFICATES_PATH, issueCertificate, trustDomainOf } from './ca-routes.js';
import { certificatePrincipal, clientCertificatePrincipal } from './cert-auth.js';
import { sessionFromCookies } from './dashboard-login.js';
import { DashboardRoutes } from './dashboard-routes.js';
import type { TraceBuffer } from '../traces/trace-buffer.js';
import { receiveOtlpTraces } from '../traces/otlp-receiver.js';

export interface ApiDeps {
  store: Store;
  index: MeshIndex;
  push: PushServer;
  registry: Registry;
  tokens: () => TokenAuthority | undefined;
  /** The mesh CA, once loaded. */
  ca: () => MeshCa | undefined;
  metrics: ControlMetrics;
  stats: SignalWindow;
  ready: () => boolean;
  replica: string;
  /** Recent traces, fed by POST /v1/traces (OTLP/HTTP from the sidecars and apps). */
  traces: TraceBuffer;
  log: Logger;
  /** fetch() for the other replicas' APIs (verifies their certificates against the trust bundle). */
  fetchOther: FetchLike;
  /** Where the built dashboard is (default dist/dashboard/); tests point elsewhere. */
  dashboardDir?: string;
}

const MAX_BODY = 8 * 1024 * 1024;

type Req = Http2ServerRequest;
type Res = Http2ServerResponse;

function send(res: Res, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

export function json(res: Res, status: number, value: unknown): void {
  send(res, status, JSON.stringify(value, null, 2) + '\n', 'application/json');
}

export function problem(res: Res, status: number, code: string, message: string, extra: Record<string, unknown> = {}): void {
  json(res, status, { error: code, message, ...extra });
}

function readBody(req: Req): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error(`request body over ${MAX_BODY} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export async function readJson(req: Req): Promise<unknown> {
  return JSON.parse((await readBody(req)).toString('utf8')) as unknown;
}

function storeFailure(res: Res, err: unknown, deps: ApiDeps): void {
  if (err instanceof StoreError) {
    deps.metrics.storeErrors.inc([err.code]);
    const status = err.code === 'conflict' ? 409 : err.code === 'disk-full' ? 507 : 503;
    problem(res, status, `store-${err.code}`, `the store did not take the change: ${err.message}`);
    return;
  }
  deps.log.error('API request failed', { reason: (err as Error).stack ?? String(err) });
  problem(res, 500, 'internal', (err as Error).message);
}

/** A kind as users type it (httproute, HTTPRoutes, svc) -> its canonical name, or undefined. */
export function canonicalKind(text: string): string | undefined {
  const t = text.toLowerCase();
  const aliases: Record<string, string> = { svc: 'Service', services: 'Service', meshconfigs: 'MeshConfig' };
  if (aliases[t]) return aliases[t];
  for (const k of Object.keys(KINDS)) {
    const l = k.toLowerCase();
    if (t === l || t === `${l}s` || t === `${l}es`) return k;
  }
  return undefined;
}

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** The API's transport: TLS (HTTP/2 and HTTP/1.1 by ALPN) once `ready`, or clear text (--insecure-http). */
export type ApiTransport = { kind: 'plain' } | { kind: 'tls'; ready: () => boolean };

export interface ApiServer {
  server: net.Server;
  /** TLS: installs a new certificate and trust bundle for new handshakes. */
  setSecureContext(options: tls.SecureContextOptions): void;
}

/**
 * One port for both protocols. Over TLS, ALPN picks HTTP/2 or HTTP/1.1 (client certificates are asked for, not
 * required: an admin or proxy may present one, other callers use tokens). In clear text (Node's HTTP/2 server
 * negotiates HTTP/1.1 only over TLS) the first bytes tell the HTTP/2 preface from an HTTP/1.1 request line.
 */
export function createApiServer(deps: ApiDeps, transport: ApiTransport): ApiServer {
  const dashboard = new DashboardRoutes(deps.tokens, deps.dashboardDir);
  const onRequest = (req: Req, res: Res) => {
    void handle(req, res, deps, dashboard).catch((err: unknown) => storeFailure(res, err, deps));
  };
  if (transport.kind === 'tls') {
    const secure = http2.createSecureServer(
      { allowHTTP1: true, minVersion: 'TLSv1.2', requestCert: true, rejectUnauthorized: false, secureOptions: constants.SSL_OP_NO_TICKET, settings: { maxConcurrentStreams: 100 } },
      onRequest,
    );
    // Config streams live long: no idle timeout on the sessions that carry them (heartbeats keep them honest).
    secure.setTimeout(0);
    secure.on('tlsClientError', (err) => deps.log.debug('API TLS handshake failed', { reason: err.message }));
    const front = net.createServer({ noDelay: true }, (socket) => {
      // No certificate yet (the store and the CA are loading): no handshake could succeed.
      if (!transport.ready()) return socket.destroy();
      socket.on('error', () => socket.destroy());
      secure.emit('connection', socket);
    });
    return { server: front, setSecureContext: (options) => secure.setSecureContext(options) };
  }
  const h2 = http2.createServer({ settings: { maxConcurrentStreams: 100 } }, onRequest);
  h2.setTimeout(0);
  const h1 = http.createServer({ headersTimeout: 10_000, requestTimeout: 60_000 }, onRequest as unknown as http.RequestListener);
  const server = net.createServer({ noDelay: true }, (socket) => {
    socket.setTimeout(10_000, () => socket.destroy());
    let seen = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, H2_PREFACE.length);
      const h2Like = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      if (h2Like && seen.length < H2_PREFACE.length) return; // need more bytes to decide
      socket.off('data', onData);
      socket.pause();
      socket.setTimeout(0);
      socket.unshift(seen);
      // The HTTP/2 session reads the bytes put back itself; resuming would deliver them twice.
      if (h2Like) h2.emit('connection', socket);
      else {
        h1.emit('connection', socket);
        socket.resume();
      }
    };
    socket.on('data', onData);
    socket.on('error', () => socket.destroy());
  });
  return { server, setSecureContext: () => {} };
}

/** The caller: a bearer token (admin or join), or a proxy proving its mesh certificate; a reason when refused. */
function authenticate(req: Req, deps: ApiDeps): Principal | { reason: string } {
  const h = req.headers.authorization;
  if (h === undefined) {
    const byCert = clientCertificatePrincipal(req, deps.ca(), trustDomainOf(deps));
    if (byCert !== undefined) return byCert;
  }
  if (typeof h === 'string' && h.startsWith('Mycel-Cert ')) return certificatePrincipal(req, h, deps.ca());
  if (typeof h === 'string' && h.startsWith('Bearer ')) {
    const p = deps.tokens()?.check(h.slice(7).trim()) ?? { reason: 'the control plane is still starting' };
    if ('role' in p && p.role === 'proxy' && p.singleUseId !== undefined && tokenSpent(deps.store, p.singleUseId)) {
      return { reason: 'this single-use join token was spent on a certificate; the proxy authenticates with that certificate now' };
    }
    return p;
  }
  // The dashboard's session cookie (see dashboard-login.ts): SameSite=Strict, and it only ever reads.
  const authority = req.headers[':authority'] ?? req.headers.host;
  const session = sessionFromCookies(req.headers.cookie, typeof authority === 'string' ? authority : undefined);
  return session !== undefined && deps.tokens()?.verifySession(session, Date.now()) === true ? { role: 'viewer' } : { reason: 'missing or invalid bearer token' };
}

async function handle(req: Req, res: Res, deps: ApiDeps, dashboard: DashboardRoutes): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://control');
  const path = url.pathname;
  const method = req.method;
  if (path === '/healthz') return send(res, 200, 'ok\n');
  if (path === '/readyz') return deps.ready() ? send(res, 200, 'ready\n') : send(res, 503, `not ready: loading the store (${deps.store.description})\n`);
  if (path === '/metrics') {
    deps.metrics.revision.set(deps.store.revision());
    const ca = deps.ca();
    deps.metrics.updateCa(ca === undefined ? undefined : ca.state());
    deps.metrics.recentTraces.set(deps.traces.size);
    deps.metrics.statsSeries.set(deps.stats.size);
    deps.metrics.statsDropped.child('window-full').value = deps.stats.droppedSeries;
    deps.metrics.statsDropped.child('proxy-cap').value = deps.stats.droppedByProxies;
    deps.metrics.recentTraceSpans.set(deps.traces.spans);
    deps.metrics.traceSpansDropped.child().value = deps.traces.droppedSpans;
    return send(res, 200, deps.metrics.render(), 'text/plain; version=0.0.4; charset=utf-8');
  }
  // OTLP/HTTP receiver: open like a collector's (apps export here too); what it keeps is bounded, reading needs the admin token.
  if (path === '/v1/traces') {
    if (method !== 'POST') return problem(res, 405, 'method-not-allowed', 'POST an OTLP ExportTraceServiceRequest (protobuf or JSON)');
    const out = await receiveOtlpTraces(req.headers['content-type'], req.headers['content-encoding'], await readBody(req).catch(() => null), deps.traces);
    return send(res, out.status, out.body, out.type);
  }
  if (!path.startsWith('/api/v1/')) {
    if (dashboard.handle(req, res, path, url)) return;
    return problem(res, 404, 'not-found', `no ${path}; the API lives under /api/v1/ and the dashboard at /`);
  }
  if (!deps.ready()) return problem(res, 503, 'not-ready', 'the control plane is still loading its store; try again in a moment');
  // Issuance authenticates itself: a join token, or a renewal proved by the current certificate's key.
  if (path === CERTIFICATES_PATH) return issueCertificate(req, res, deps);
  // The roots are public: a new sidecar fetches them to find the one its join token pins.
  if (path === BUNDLE_PATH) {
    const ca = deps.ca();
    return ca === undefined ? problem(res, 503, 'ca-not-ready', 'the mesh CA is not loaded yet') : json(res, 200, { trustBundle: ca.bundle(), activeRoot: ca.state().active });
  }
  const principal = authenticate(req, deps);
  if ('reason' in principal) return problem(res, 401, 'unauthorized', `${principal.reason}: use the admin token (.mycel/admin-token) or a join token from \`mycel token create\`; in a browser, run \`mycel dashboard\` to sign in`, { reason: principal.reason });
  if (principal.role === 'viewer' && method !== 'GET' && method !== 'HEAD') {
    return problem(res, 403, 'read-only', 'the dashboard session only reads; change the mesh with `mycel apply` or the admin token');
  }

  if (path === STREAM_PATH && method === 'POST') {
    if (req.httpVersionMajor !== 2) return problem(res, 505, 'http2-required', 'the config stream needs HTTP/2');
    deps.push.accept(req, res, principal);
    return;
  }
  if (principal.role === 'proxy') return problem(res, 403, 'forbidden', 'a join token only opens a config stream; this request needs the admin token');

  const parts = path.slice('/api/v1/'.length).split('/').filter((p) => p.length > 0).map(decodeURIComponent);
  const [top, ...rest] = parts;
  switch (top) {
    case 'apply': {
      if (method !== 'POST') return problem(res, 405, 'method-not-allowed', 'POST a JSON body {"resources": [...]}');
      let body: { resources?: unknown; dryRun?: unknown };
      try {
        body = (await readJson(req)) as typeof body;
      } catch (err) {
        return problem(res, 400, 'bad-request', `the body is not JSON: ${(err as Error).message}`);
      }
      if (!Array.isArray(body.resources)) return problem(res, 400, 'bad-request', 'expected {"resources": [...]}');
      try {
        const out = await applyResources(deps.store, body.resources, body.dryRun === true);
        if (!out.ok) {
          deps.metrics.applies.inc(['invalid']);
          return problem(res, 422, 'invalid', 'the resources are invalid; nothing was stored', { problems: out.problems });
        }
        deps.metrics.applies.inc(['ok']);
        return json(res, 200, { revision: out.revision, results: out.results });
      } catch (err) {
        deps.metrics.applies.inc(['failed']);
        return storeFailure(res, err, deps);
      }
    }
    case 'resources': {
      const [kindText, namespace, name] = rest;
      if (kindText === undefined) {
        if (method !== 'GET') return problem(res, 405, 'method-not-allowed', 'GET');
        return json(res, 200, { revision: deps.store.revision(), items: Object.keys(KINDS).flatMap((k) => deps.store.list(k).map((o) => o.value)) });
      }
      const kind = canonicalKind(kindText);
      if (kind === undefined) return problem(res, 404, 'unknown-kind', `unknown kind "${kindText}"; kinds: ${Object.keys(KINDS).join(', ')}`);
      if (namespace === undefined) {
        if (method !== 'GET') return problem(res, 405, 'method-not-allowed', 'GET');
        return json(res, 200, { revision: deps.store.revision(), items: deps.store.list(kind).map((o) => o.value) });
      }
      if (name === undefined || rest.length > 3) return problem(res, 404, 'not-found', 'expected /api/v1/resources/KIND/NAMESPACE/NAME');
      if (method === 'GET') {
        const o = deps.store.get(kind, namespace, name);
        return o === undefined ? problem(res, 404, 'not-found', `${kind} ${namespace}/${name} not found`) : json(res, 200, o.value);
      }
      if (method === 'DELETE') {
        try {
          const revision = await deleteResource(deps.store, kind, namespace, name);
          if (revision === undefined) return problem(res, 404, 'not-found', `${kind} ${namespace}/${name} not found`);
          deps.metrics.applies.inc(['deleted']);
          return json(res, 200, { revision, deleted: { kind, namespace, name } });
        } catch (err) {
          return storeFailure(res, err, deps);
        }
      }
      return problem(res, 405, 'method-not-allowed', 'GET or DELETE');
    }
    case 'proxies': {
      const local = deps.push.status();
      if (url.searchParams.get('scope') === 'local') return json(res, 200, { replica: deps.replica, revision: deps.store.revision(), items: local });
      // Proxies connected to the other replicas too, so that any replica answers for the whole mesh.
      const others = await proxiesOfOthers(deps.store, deps.replica, deps.tokens()!.adminToken(), deps.fetchOther);
      return json(res, 200, { replica: deps.replica, revision: deps.store.revision(), items: [...local, ...others.items], unreachableReplicas: others.unreachable });
    }
    case 'endpoints': {
      const [namespace, service] = rest.length === 1 ? ['default', rest[0]] : rest;
      if (namespace === undefined || service === undefined) return problem(res, 404, 'not-found', 'expected /api/v1/endpoints/[NAMESPACE/]SERVICE');
      const svc = deps.index.service(serviceKey(namespace, service));
      if (svc === undefined) return problem(res, 404, 'not-found', `no service ${namespace}/${service}`);
      const spec = (svc.resource?.value as { spec?: { endpoints?: Array<{ address: string; port: number; labels?: Record<string, string> }> } } | undefined)?.spec;
      const items = [
        ...(spec?.endpoints ?? []).map((e) => ({ address: e.address, port: e.port, labels: e.labels ?? {}, source: 'static', ready: true })),
        ...[...svc.endpoints.values()].map((e) => {
          const lease = deps.registry.leaseOf(e.proxyId);
          return { address: e.address, port: e.port, labels: e.labels, source: 'registered', ready: e.ready, proxyId: e.proxyId, replica: e.replica, ...(lease ? { leaseExpires: new Date(lease.expiresAt).toISOString(), streamOpen: lease.attached } : {}) };
        }),
      ];
      return json(res, 200, { service, namespace, items });
    }
    case 'tap':
      if (method !== 'GET') return problem(res, 405, 'method-not-allowed', 'GET /api/v1/tap?service=NAME');
      // Proxies connected to this replica only: with several replicas, tap each one (docs/telemetry.md).
      serveTap(res, url.searchParams, (filter, stream) => deps.push.openTap(filter, (events, dropped) => {
        for (const ev of events) stream.offer(ev);
        stream.lost(dropped);
      }), true);
      return;
    case 'ca':
      return caRoutes(req, res, deps, rest);
    case 'dashboard': {
      // POST /api/v1/dashboard/login-codes (admin token): a one-time code that signs a browser in at /login?code=.
      if (rest[0] !== 'login-codes' || method !== 'POST') return problem(res, 404, 'not-found', 'POST /api/v1/dashboard/login-codes');
      if (principal.role !== 'admin') return problem(res, 403, 'forbidden', 'login codes need the admin token');
      const { code, expiresAt } = dashboard.codes.issue(Date.now());
      return json(res, 200, { code, path: `/login?code=${code}`, expiresAt });
    }
    case 'stats': {
      if (method !== 'GET') return problem(res, 405, 'method-not-allowed', 'GET');
      const windowSeconds = parseWindow(url.searchParams.get('window'));
      if (windowSeconds instanceof Error) return problem(res, 400, 'bad-request', windowSeconds.message);
      // Services with a connected proxy are listed even when idle (rps 0).
      const known = deps.push.status().filter((p) => p.endpoint !== null).map((p) => ({ service: p.service, namespace: p.namespace }));
      if (url.searchParams.get('scope') === 'local') {
        // For the other replicas: this one's raw buckets, which they merge with their own.
        const { first, last } = windowSlots(deps.stats.now(), windowSeconds);
        return json(res, 200, { replica: deps.replica, known, ...deps.stats.exportRaw(first, last) });
      }
      const others = await askOthers<RawWindow & { known?: typeof known }>(deps.store, deps.replica, deps.tokens()!.adminToken(), deps.fetchOther, `/api/v1/stats?scope=local&window=${windowSeconds}`);
      const allKnown = [...known, ...others.answers.flatMap((a) => (Array.isArray(a.known) ? a.known : []))];
      const report = mergedReport(deps.stats, others.answers, windowSeconds, allKnown);
      return json(res, 200, others.unreachable.length > 0 ? { ...report, unreachableReplicas: others.unreachable } : report);
    }
    case 'traces': {
      if (method !== 'GET') return problem(res, 405, 'method-not-allowed', 'GET');
      const [id] = rest;
      if (id === undefined) {
        const limit = Math.min(1000, Math.max(1, Number(url.searchParams.get('limit') ?? 50) || 50));
        return json(res, 200, { traces: deps.traces.list(limit, url.searchParams.get('service') ?? undefined) });
      }
      const spans = rest.length === 1 ? deps.traces.get(id.toLowerCase()) : undefined;
      if (spans === undefined) return problem(res, 404, 'not-found', `no trace ${id} in the recent-trace buffer (it keeps the latest ${deps.traces.limits.maxTraces} traces)`);
      return json(res, 200, { traceId: id.toLowerCase(), spans });
    }
    case 'tokens': {
      if (method !== 'POST') return problem(res, 405, 'method-not-allowed', 'POST {"service": NAME, "namespace": NS, "ttlSeconds"?: N, "singleUse"?: true}');
      let body: { service?: unknown; namespace?: unknown; ttlSeconds?: unknown; singleUse?: unknown };
      try {
        body = (await readJson(req)) as typeof body;
      } catch {
        return problem(res, 400, 'bad-request', 'expected {"service": NAME}');
      }
      const svc = body.service;
      const ns = body.namespace ?? 'default';
      if (typeof svc !== 'string' || !DNS_LABEL.test(svc) || typeof ns !== 'string' || !DNS_LABEL.test(ns)) {
        return problem(res, 400, 'bad-request', 'service and namespace must be DNS labels');
      }
      // The control plane's own identity lives there: no workload may get a certificate in it.
      if (ns === SYSTEM_NAMESPACE) return problem(res, 400, 'reserved-namespace', `namespace ${SYSTEM_NAMESPACE} is reserved for the mesh's own identities`);
      const singleUse = body.singleUse === true;
      const ttl = body.ttlSeconds ?? (singleUse ? SINGLE_USE_DEFAULT_TTL_SECONDS : undefined);
      if (ttl !== undefined && (typeof ttl !== 'number' || !Number.isSafeInteger(ttl) || ttl < 1)) return problem(res, 400, 'bad-request', 'ttlSeconds must be a whole number of seconds >= 1');
      const bare = deps.tokens()!.joinToken(ns, svc, { ...(ttl !== undefined ? { ttlSeconds: ttl } : {}), singleUse });
      // The active root's fingerprint rides along, so that a sidecar on a new host can verify this control plane.
      const active = deps.ca()?.state().active;
      const token = active === undefined ? bare : pinnedToken(bare, active);
      return json(res, 200, { service: svc, namespace: ns, token, ...(ttl !== undefined ? { expiresAt: Date.now() + ttl * 1000 } : {}), singleUse });
    }
    default:
      return problem(res, 404, 'not-found', `no /api/v1/${top ?? ''}; try apply, resources, proxies, endpoints, stats, tap, tokens, traces, ca`);
  }
}
