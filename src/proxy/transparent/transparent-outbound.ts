// Transparent mode's outbound listener: each redirected connection is sent on by its original destination - to the
// mesh service that owns that address (as if it had arrived on an upstream binding for it), else passed through
// unchanged (MeshConfig outboundTrafficPolicy ALLOW_ANY) or refused (REGISTRY_ONLY). Connections that were not
// redirected (an app using the listener as its HTTP proxy) are served as in explicit mode.

import net, { type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../core/log.js';
import type { Binding, PlanHolder } from '../outbound/discover.js';
import { detectProtocol } from '../outbound/detect.js';
import type { TunnelDeps, TunnelRecord } from '../outbound/tunnel.js';
import { refuseRaw } from '../transport/http-frontend.js';
import { splice } from '../transport/splice.js';
import type { ServiceTarget } from '../config/targets.js';
import { sniffHost } from './host-sniff.js';
import { hostPort, originalDestination, type OriginalDestination } from './original-dst.js';

export interface TransparentOutboundHooks {
  plans: PlanHolder;
  tunnels: TunnelDeps;
  log: Logger;
  isDraining(): boolean;
  /** A connection made to the listener itself: the explicit-mode handling (forward proxy, Host routing). */
  explicit(socket: Socket): void;
  /** A connection for a mesh service: handled as on an upstream binding for that service and port. */
  bound(socket: Socket, binding: Binding): void;
}

export function createTransparentOutboundServer(h: TransparentOutboundHooks, maxConnections: number): Server {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket: Socket) => {
    if (h.isDraining()) {
      socket.destroy();
      return;
    }
    let dst: OriginalDestination | null;
    try {
      dst = originalDestination(socket);
    } catch (err) {
      h.log.warn('cannot read the original destination of a connection; closing it', { reason: (err as Error).message });
      socket.destroy();
      return;
    }
    if (dst === null) {
      h.explicit(socket);
      return;
    }
    const svc = h.plans.current.lookupAddress(dst.address, dst.port);
    if (svc !== undefined) {
      toService(h, socket, svc, dst.port);
      return;
    }
    if (h.plans.discover === undefined) {
      outsideMesh(h, socket, dst);
      return;
    }
    // With a control plane the view holds only the services this sidecar has used: an HTTP/1 request's Host names the
    // service to ask about; once the answer is in, the address may belong to it.
    sniffHost(socket, h.plans.current.mesh.timeouts.detectMs, (host) => {
      if (host === null || h.plans.current.lookupHost(host) !== undefined) {
        outsideMesh(h, socket, dst);
        return;
      }
      void h.plans.discover!(host).then(() => {
        const found = h.plans.current.lookupAddress(dst.address, dst.port);
        if (found !== undefined) toService(h, socket, found, dst.port);
        else outsideMesh(h, socket, dst);
      });
    });
  });
  server.maxConnections = maxConnections;
  return server;
}

function toService(h: TransparentOutboundHooks, socket: Socket, svc: ServiceTarget, port: number): void {
  // name.namespace: the exact service, even where another namespace has one of the same name.
  h.bound(socket, { service: `${svc.name}.${svc.namespace}`, servicePort: port });
}

/** A destination no mesh service owns: MeshConfig outboundTrafficPolicy decides. */
function outsideMesh(h: TransparentOutboundHooks, socket: Socket, dst: OriginalDestination): void {
  const mesh = h.plans.current.mesh;
  if (mesh.outboundTrafficPolicy === 'REGISTRY_ONLY') refuseUnknown(h, socket, dst, mesh.timeouts.detectMs);
  else passThrough(h, socket, dst);
}

/** REGISTRY_ONLY: an HTTP/1 client gets a 502 naming the reason; anything else is closed. */
function refuseUnknown(h: TransparentOutboundHooks, socket: Socket, dst: OriginalDestination, detectMs: number): void {
  const where = hostPort(dst);
  h.log.info('refused a connection to a destination outside the mesh (outboundTrafficPolicy REGISTRY_ONLY)', { destination: where });
  detectProtocol(socket, detectMs, 'tcp', (p) => {
    if (p === 'h1') refuseRaw(socket, 'unknown-service', `${where} is not a mesh service and the mesh allows registered destinations only (outboundTrafficPolicy REGISTRY_ONLY)`);
    else socket.destroy();
  });
}

/** ALLOW_ANY: a plain TCP connection to where the app meant to go (the sidecar's own traffic is not redirected). */
function passThrough(h: TransparentOutboundHooks, client: Socket, dst: OriginalDestination): void {
  const deps = h.tunnels;
  const rec: TunnelRecord = { direction: 'outbound', kind: 'tcp', source: deps.self, destination: null, endpoint: hostPort(dst), error: null, result: null, startTime: performance.now() };
  deps.opened(rec);
  const mesh = h.plans.current.mesh;
  const upstream = net.connect({ host: dst.address, port: dst.port, allowHalfOpen: true, noDelay: true });
  upstream.setTimeout(mesh.timeouts.connectMs, () => upstream.destroy(new Error('connect timeout')));
  const onError = (err: Error) => {
    h.log.info('pass-through connection failed', { destination: rec.endpoint, reason: err.message });
    client.destroy();
    deps.closed(rec);
  };
  upstream.once('error', onError);
  upstream.once('connect', () => {
    upstream.off('error', onError);
    upstream.setTimeout(0);
    splice(client, upstream, mesh.timeouts.idleMs, (r) => {
      rec.result = r;
      deps.closed(rec);
    });
  });
}
