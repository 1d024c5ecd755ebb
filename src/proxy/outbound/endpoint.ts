// Outbound endpoint: sends the request to the chosen endpoint over the right client: mTLS to a peer sidecar
// (HTTP/1.1 pooled, or HTTP/2 multiplexed), or plain to a service outside the mesh.

import type { ClientCache, ClientKind } from '../transport/client-cache.js';
import type { HttpExchange } from '../stack/exchange.js';
import type { HttpService } from '../stack/service.js';
import { ORIG_PROTO_HEADER } from '../stack/http-types.js';
import type { PlanHolder } from './discover.js';

export class ForwardToEndpoint implements HttpService {
  constructor(
    private readonly clients: ClientCache,
    private readonly plans: PlanHolder,
  ) {}

  call(ex: HttpExchange): void {
    const svc = ex.service;
    const ep = ex.target;
    if (svc === null || ep === null) throw new Error('forward without a resolved endpoint');
    const fromH1 = ex.downstream.protocol === 'http/1.1';
    let kind: ClientKind;
    if (svc.external) {
      const portProto = ex.port?.protocol;
      kind = !fromH1 && (portProto === 'http2' || portProto === 'grpc') ? 'h2-plain' : 'h1-plain';
    } else if (!fromH1 || ex.grpc || this.plans.current.mesh.transportHttp1 === 'h2') {
      kind = 'h2-mtls';
      // On the attempt's fields: a retry sends a fresh copy of the request's fields.
      if (fromH1) ex.attemptRequest.headers.push(ORIG_PROTO_HEADER, 'http/1.1');
    } else {
      kind = 'h1-mtls';
    }
    ex.peerIdentity = svc.external ? null : svc.identity;
    const client = this.clients.get(kind, ep, svc.identity, `${svc.name}.${svc.namespace}.svc`, svc.runtime?.breaker);
    ex.upstream = client.request(ex.attemptRequest, ex.attemptSink);
  }
}
