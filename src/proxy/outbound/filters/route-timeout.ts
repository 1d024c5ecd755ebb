// Route timeouts (HTTPRoute rules[].timeouts): `request` bounds the whole exchange from routing to the last response
// byte, `backendRequest` one request to the backend. Either one firing answers 504 response-timeout (or resets a
// response already under way). The callbacks are module functions with arguments: no closure per request.

import { MycelError } from '../../../core/errors.js';
import type { HttpExchange } from '../../stack/exchange.js';

function requestTimedOut(ex: HttpExchange, ms: number): void {
  ex.fail(new MycelError('response-timeout', `no complete response within the route's request timeout (${ms} ms, route ${ex.route ?? '?'})`));
}

function backendTimedOut(ex: HttpExchange, ms: number): void {
  ex.fail(new MycelError('response-timeout', `the backend ${ex.backend?.name ?? '?'} did not answer completely within the route's backendRequest timeout (${ms} ms)`));
}

export function startRequestTimeout(ex: HttpExchange, ms: number): void {
  ex.addTimer(setTimeout(requestTimedOut, ms, ex, ms));
}

export function startBackendTimeout(ex: HttpExchange, ms: number): void {
  ex.addTimer(setTimeout(backendTimedOut, ms, ex, ms));
}
