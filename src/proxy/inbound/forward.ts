// Inbound forward: hands the request to the app on loopback in the protocol the app speaks: the Service's declared
// appProtocol when there is one, HTTP/2 (h2c) for gRPC, else the protocol the original client used.

import type { HttpExchange } from '../stack/exchange.js';
import type { HttpClient } from '../stack/http-types.js';
import type { HttpService } from '../stack/service.js';
import type { PlanHolder } from '../outbound/discover.js';

export class ForwardToApp implements HttpService {
  private readonly endpoint: string;

  constructor(
    private readonly h1: HttpClient,
    private readonly h2: HttpClient,
    private readonly plans: PlanHolder,
    private readonly self: string,
    appPort: number,
  ) {
    this.endpoint = `127.0.0.1:${appPort}`;
  }

  call(ex: HttpExchange): void {
    const declared = this.plans.current.self?.portFor(undefined)?.protocol;
    const useH2 = ex.grpc || declared === 'http2' || declared === 'grpc' || (declared !== 'http' && ex.originalProtocol === 'h2');
    ex.destination = this.self;
    ex.endpoint = this.endpoint;
    ex.upstream = (useH2 ? this.h2 : this.h1).request(ex, ex);
  }
}
