// The layer abstraction: an HttpService handles one exchange (forwarding it, or failing it through ex.fail), and a
// layer wraps a service with one concern. A stack is built once per listener and called for every request.

import type { HttpExchange } from './exchange.js';

export interface HttpService {
  call(ex: HttpExchange): void;
}

export type HttpLayer = (inner: HttpService) => HttpService;

/** Composes layers around a terminal service; the first layer listed is the outermost (it sees the request first). */
export function buildStack(terminal: HttpService, layers: readonly HttpLayer[]): HttpService {
  let svc = terminal;
  for (let i = layers.length - 1; i >= 0; i--) svc = (layers[i] as HttpLayer)(svc);
  return svc;
}
