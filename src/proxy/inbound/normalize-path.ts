// Inbound path normalisation: every request's path is put in the one canonical form (security/request-path.ts) before
// authorization looks at it, and that same path is what the app receives; a path with no safe meaning gets 400.

import { MycelError } from '../../core/errors.js';
import { normalizeRequestPath } from '../../security/request-path.js';
import type { HttpExchange } from '../stack/exchange.js';
import type { HttpLayer, HttpService } from '../stack/service.js';

class NormalizePath implements HttpService {
  constructor(
    private readonly inner: HttpService,
    private readonly self: string,
  ) {}

  call(ex: HttpExchange): void {
    const n = normalizeRequestPath(ex.path);
    if (typeof n === 'string') {
      ex.path = n;
      this.inner.call(ex);
      return;
    }
    ex.destination = this.self;
    ex.fail(new MycelError('bad-request', n.problem));
  }
}

export function normalizePathLayer(self: string): HttpLayer {
  return (inner) => new NormalizePath(inner, self);
}
