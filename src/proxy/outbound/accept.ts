// Outbound accept: the main outbound listener (HTTP forward proxy and Host routing, HTTP/1.1 or h2c prior knowledge)
// and the upstream bindings (a local port per service), handing each connection to HTTP or to a TCP tunnel.

import net, { type Server, type Socket } from 'node:net';
import type { ListenAddress } from '../../core/listen-address.js';
import type { Logger } from '../../core/log.js';
import type { HttpFrontend } from '../transport/http-frontend.js';
import { detectProtocol } from './detect.js';
import type { Binding, PlanHolder } from './discover.js';
import { handleTcpBinding, type TunnelDeps } from './tunnel.js';

export function listen(server: Server, addr: ListenAddress): Promise<ListenAddress> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(new Error(`cannot listen on ${addr.host}:${addr.port}: ${err.message}`, { cause: err }));
    server.once('error', onError);
    server.listen({ host: addr.host, port: addr.port, backlog: 1024 }, () => {
      server.off('error', onError);
      const a = server.address() as net.AddressInfo;
      resolve({ host: a.address, port: a.port });
    });
  });
}

/** The main outbound listener: every connection is HTTP (h2c if it opens with the HTTP/2 preface). */
export function createOutboundServer(frontend: HttpFrontend, maxConnections: number, requestHeadersMs: number): Server {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket: Socket) => {
    if (frontend.isDraining) {
      socket.destroy();
      return;
    }
    acceptExplicit(frontend, requestHeadersMs, socket);
  });
  server.maxConnections = maxConnections;
  return server;
}

/** A connection to the main outbound listener (also one that transparent mode finds was not redirected). */
export function acceptExplicit(frontend: HttpFrontend, requestHeadersMs: number, socket: Socket): void {
  // Clients speak first on a proxy port; a silent one gets as long as for its request head, then HTTP/1 answers.
  detectProtocol(socket, requestHeadersMs, 'h1', (p) => {
    if (p === 'h2') frontend.acceptH2(socket);
    else frontend.acceptH1(socket);
  });
}

/** An upstream binding: everything on this port goes to one service, in the protocol its port declares. */
export function createBindingServer(frontend: HttpFrontend, binding: Binding, plans: PlanHolder, tunnels: TunnelDeps, log: Logger): Server {
  return net.createServer({ allowHalfOpen: true, noDelay: true }, (socket: Socket) => {
    if (frontend.isDraining) {
      socket.destroy();
      return;
    }
    acceptBound(frontend, binding, plans, tunnels, log, socket);
  });
}

/**
 * A connection for one service (an upstream binding's, or a redirected one in transparent mode): raw TCP when the
 * port is declared tcp, else HTTP after detection (or TCP when the port's protocol is undeclared and it is not HTTP).
 */
export function acceptBound(frontend: HttpFrontend, binding: Binding, plans: PlanHolder, tunnels: TunnelDeps, log: Logger, socket: Socket): void {
  const plan = plans.current;
  const svc = plan.lookupHost(binding.service);
  const declared = svc?.portFor(binding.servicePort)?.protocol ?? 'detect';
  if (declared === 'tcp') {
    // Declared TCP: no sniffing, so a server-speaks-first protocol flows at once.
    handleTcpBinding(tunnels, socket, binding);
    return;
  }
  const timeout = declared === 'detect' ? plan.mesh.timeouts.detectMs : plan.mesh.timeouts.requestHeadersMs;
  detectProtocol(socket, timeout, declared === 'detect' ? 'tcp' : 'h1', (p) => {
    if (p === 'h2') frontend.acceptH2(socket);
    else if (p === 'h1') frontend.acceptH1(socket);
    else if (declared === 'detect') handleTcpBinding(tunnels, socket, binding);
    else {
      log.info('refused a non-HTTP connection on an HTTP binding', { service: binding.service });
      frontend.acceptH1(socket); // the HTTP parser answers 400 with the reason
    }
  });
}
