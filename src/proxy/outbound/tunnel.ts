// Outbound tunnels: HTTP CONNECT from a forward-proxy client, WebSocket (Upgrade) requests, and raw TCP from an
// upstream binding. Each opens a dedicated connection to the destination (mTLS to its sidecar, plain if external).

import { performance } from 'node:perf_hooks';
import type { IncomingMessage } from 'node:http';
import net, { type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { MycelError, toMycelError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { EndpointTarget, ServiceTarget } from '../config/plan.js';
import { requestHeaderList } from '../transport/h1/server-response.js';
import { connectionRefused } from '../transport/connection-slots.js';
import { refuseRaw } from '../transport/http-frontend.js';
import { splice, type SpliceResult } from '../transport/splice.js';
import type { IdentityStore } from '../transport/tls/identity.js';
import { ALPN_H1, ALPN_TCP, connectPeer } from '../transport/tls/peer-connect.js';
import { relayUpgrade } from '../transport/upgrade.js';
import { askControlPlane, resolveDestination, type Binding, type PlanHolder } from './discover.js';
import { tunnelBackend } from './tunnel-route.js';

export interface TunnelRecord {
  direction: 'outbound' | 'inbound';
  kind: 'connect' | 'upgrade' | 'tcp';
  source: string | null;
  destination: string | null;
  endpoint: string | null;
  /** Set when the tunnel could not be opened. */
  error: MycelError | null;
  result: SpliceResult | null;
  /** performance.now() when the tunnel was asked for (the access log's duration). */
  readonly startTime: number;
}

export interface TunnelDeps {
  plans: PlanHolder;
  identity: IdentityStore | null;
  log: Logger;
  self: string;
  /** Drain bookkeeping and telemetry. */
  opened(rec: TunnelRecord): void;
  closed(rec: TunnelRecord): void;
}

function openUpstream(deps: TunnelDeps, svc: ServiceTarget, ep: EndpointTarget, alpn: string): { socket: Socket; event: 'connect' | 'secureConnect' } {
  if (svc.external) return { socket: net.connect({ host: ep.address, port: ep.port, allowHalfOpen: true, noDelay: true }), event: 'connect' };
  if (deps.identity === null) throw new MycelError('tls-handshake-failed', 'no workload identity for mTLS');
  return { socket: connectPeer(deps.identity, ep.address, ep.port, svc.identity, alpn, `${svc.name}.${svc.namespace}.svc`), event: 'secureConnect' };
}

/** The destination and endpoint of a tunnel; `upgrade` is the request head of an HTTP upgrade, null for raw TCP. */
function pick(deps: TunnelDeps, authority: string, binding: Binding | null, upgrade: IncomingMessage | null): { svc: ServiceTarget; ep: EndpointTarget } | MycelError {
  const r = resolveDestination(deps.plans.current, authority, binding);
  if (r instanceof MycelError) return r;
  const backend = tunnelBackend(r.service, r.port, upgrade);
  if (backend instanceof MycelError) return backend;
  const ep = backend !== undefined ? backend.pickEndpoint() : r.service.pickEndpoint();
  if (ep === undefined) return new MycelError('no-endpoints', `${backend?.name ?? r.service.name} has no endpoints`);
  return { svc: backend?.service ?? r.service, ep };
}

type Target = { svc: ServiceTarget; ep: EndpointTarget } | MycelError;

/** `pick`, but a host the plan does not know is first asked of the control plane (when there is one). */
function pickThen(deps: TunnelDeps, authority: string, binding: Binding | null, upgrade: IncomingMessage | null, then: (t: Target) => void): void {
  const t = pick(deps, authority, binding, upgrade);
  if (!(t instanceof MycelError) || !askControlPlane(deps.plans, authority, binding, t, (again) => then(again ? pick(deps, authority, binding, upgrade) : t))) then(t);
}

/** A tunnel is a connection to the destination: it takes one of its circuit breaker's connection slots (or is refused). */
function takeConnectionSlot(svc: ServiceTarget): MycelError | null {
  const slots = svc.runtime?.breaker.connections;
  const why = slots?.tryAcquire() ?? null;
  return why === null ? null : connectionRefused(why, slots!);
}

/** Connects `client` to the destination as an opaque byte stream; `established` runs once the far side is up. */
function tunnelTo(deps: TunnelDeps, kind: TunnelRecord['kind'], client: Socket, svc: ServiceTarget, ep: EndpointTarget, established: () => void, failed: (err: MycelError) => void, idleMs: number): void {
  const rec: TunnelRecord = { direction: 'outbound', kind, source: deps.self, destination: svc.name, endpoint: ep.key, error: null, result: null, startTime: performance.now() };
  deps.opened(rec);
  const refused = takeConnectionSlot(svc);
  if (refused !== null) {
    rec.error = refused;
    failed(refused);
    deps.closed(rec);
    return;
  }
  const closed = (): void => {
    svc.runtime?.breaker.connections.release();
    deps.closed(rec);
  };
  let up: { socket: Socket; event: 'connect' | 'secureConnect' };
  try {
    up = openUpstream(deps, svc, ep, ALPN_TCP);
  } catch (err) {
    rec.error = toMycelError(err);
    failed(rec.error);
    closed();
    return;
  }
  const upstream = up.socket;
  upstream.setTimeout(deps.plans.current.mesh.timeouts.connectMs, () => upstream.destroy(new MycelError('connect-timeout', `no connection to ${ep.key} within the connect timeout`)));
  const onError = (err: Error) => {
    rec.error = toMycelError(err, 'connect-failed');
    deps.log.warn('tunnel failed', { kind, destination: svc.name, endpoint: ep.key, error: rec.error.code, reason: rec.error.message });
    failed(rec.error);
    closed();
  };
  upstream.once('error', onError);
  upstream.once(up.event, () => {
    upstream.off('error', onError);
    upstream.setTimeout(0);
    established();
    splice(client, upstream, idleMs, (r) => {
      rec.result = r;
      closed();
    });
  });
}

/** HTTP CONNECT host:port on the outbound listener (what HTTPS_PROXY clients send). */
/** A tunnel refused before it had an endpoint (unknown service, no endpoints, no route): reported like one that failed. */
function reportRefused(deps: TunnelDeps, kind: TunnelRecord['kind'], destination: string, err: MycelError): void {
  const rec: TunnelRecord = { direction: 'outbound', kind, source: deps.self, destination, endpoint: null, error: err, result: null, startTime: performance.now() };
  deps.opened(rec);
  deps.closed(rec);
}

export function handleConnect(deps: TunnelDeps, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  pickThen(deps, req.url ?? '', null, null, (target) => connectTo(deps, req, socket as Socket, head, target));
}

function connectTo(deps: TunnelDeps, req: IncomingMessage, client: Socket, head: Buffer, target: Target): void {
  if (target instanceof MycelError) {
    deps.log.warn('request failed', { direction: 'outbound', method: 'CONNECT', authority: req.url, error: target.code, reason: target.message });
    refuseRaw(client, target.code, target.message);
    reportRefused(deps, 'connect', req.url ?? '', target);
    return;
  }
  tunnelTo(
    deps,
    'connect',
    client,
    target.svc,
    target.ep,
    () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) client.unshift(head);
    },
    (err) => refuseRaw(client, err.code, err.message),
    deps.plans.current.mesh.timeouts.idleMs,
  );
}

/** Raw TCP on an upstream binding whose service port is `tcp` (or undetected). */
export function handleTcpBinding(deps: TunnelDeps, client: Socket, binding: Binding): void {
  pickThen(deps, '', binding, null, (target) => {
    if (target instanceof MycelError) {
      deps.log.warn('tunnel failed', { kind: 'tcp', destination: binding.service, error: target.code, reason: target.message });
      client.destroy();
      reportRefused(deps, 'tcp', binding.service, target);
      return;
    }
    tunnelTo(deps, 'tcp', client, target.svc, target.ep, () => client.resume(), () => client.destroy(), deps.plans.current.mesh.timeouts.idleMs);
  });
}

/** WebSocket and other HTTP/1.1 upgrades on the outbound listener or an HTTP binding. */
export function handleUpgrade(deps: TunnelDeps, req: IncomingMessage, socket: Duplex, head: Buffer, binding: Binding | null): void {
  pickThen(deps, req.headers.host ?? '', binding, req, (target) => upgradeTo(deps, req, socket as Socket, head, target));
}

function upgradeTo(deps: TunnelDeps, req: IncomingMessage, client: Socket, head: Buffer, target: Target): void {
  if (target instanceof MycelError) {
    refuseRaw(client, target.code, target.message);
    reportRefused(deps, 'upgrade', req.headers.host ?? '', target);
    return;
  }
  const { svc, ep } = target;
  const rec: TunnelRecord = { direction: 'outbound', kind: 'upgrade', source: deps.self, destination: svc.name, endpoint: ep.key, error: null, result: null, startTime: performance.now() };
  deps.opened(rec);
  const refused = takeConnectionSlot(svc);
  if (refused !== null) {
    rec.error = refused;
    refuseRaw(client, refused.code, refused.message);
    deps.closed(rec);
    return;
  }
  const closed = (): void => {
    svc.runtime?.breaker.connections.release();
    deps.closed(rec);
  };
  let up: { socket: Socket };
  try {
    up = openUpstream(deps, svc, ep, ALPN_H1);
  } catch (err) {
    rec.error = toMycelError(err);
    refuseRaw(client, rec.error.code, rec.error.message);
    closed();
    return;
  }
  const url = req.url ?? '/';
  const path = url.charCodeAt(0) === 47 ? url : url.replace(/^https?:\/\/[^/]*/, '') || '/';
  relayUpgrade(
    req,
    client,
    head,
    up.socket,
    { authority: req.headers.host ?? svc.name, path, headers: requestHeaderList(req.rawHeaders) },
    deps.plans.current.mesh.timeouts.idleMs,
    (err) => {
      rec.error = err;
      deps.log.warn('upgrade failed', { destination: svc.name, endpoint: ep.key, error: err.code, reason: err.message });
      refuseRaw(client, err.code, err.message);
      closed();
    },
    (_status, r) => {
      rec.result = r;
      closed();
    },
  );
}
