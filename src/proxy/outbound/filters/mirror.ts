// RequestMirror: a fire-and-forget copy of the request to another backend. The copy's response is read and dropped,
// its failures are never seen by the caller, and the load is bounded: past `maxInFlight` mirrors at once, further
// copies are dropped, and a copy whose body falls too far behind the real request is abandoned.

import { PassThrough, type Readable } from 'node:stream';
import type { Logger } from '../../../core/log.js';
import type { BackendTarget } from '../../config/targets.js';
import { HttpExchange, type Downstream, type HttpProtocol } from '../../stack/exchange.js';
import type { HeaderList } from '../../stack/http-types.js';
import type { HttpService } from '../../stack/service.js';

/** Bytes of request body a mirror may lag behind the real request before it is abandoned. */
const MIRROR_BODY_LAG = 1024 * 1024;

/** Where a mirror's response goes: nowhere. */
class DiscardDownstream implements Downstream {
  headersSent = false;
  constructor(private readonly original: Downstream) {}
  get protocol(): HttpProtocol {
    return this.original.protocol;
  }
  writeInformational(): void {}
  writeHead(): void {
    this.headersSent = true;
  }
  write(): boolean {
    return true;
  }
  end(): void {}
  abort(): void {}
  requestTrailers(): HeaderList | null {
    return this.original.requestTrailers();
  }
}

const ignoreError = (): void => {};

/**
 * Splits the request body in two: the exchange goes on reading one branch (with the client's backpressure), the
 * mirror gets the other, which never slows the first: when it lags by more than MIRROR_BODY_LAG it is destroyed.
 */
function teeBody(ex: HttpExchange, src: Readable): Readable {
  const main = new PassThrough();
  const copy = new PassThrough();
  let copying = true;
  const stopCopy = (err: Error) => {
    if (!copying) return;
    copying = false;
    copy.destroy(err);
  };
  src.on('data', (chunk: Buffer) => {
    if (copying) {
      if (copy.writableLength > MIRROR_BODY_LAG) stopCopy(new Error('the mirror fell behind the request body'));
      else copy.write(chunk);
    }
    if (!main.write(chunk)) {
      src.pause();
      main.once('drain', () => src.resume());
    }
  });
  const broken = () => {
    // Both branches must fail, never end: a cut-off body must not reach either backend as complete.
    const err = new Error('the client aborted the request body');
    main.destroy(err);
    stopCopy(err);
  };
  src.on('end', () => {
    if ((src as { aborted?: boolean }).aborted === true) return broken();
    main.end();
    if (copying) copy.end();
  });
  src.on('aborted', broken);
  src.on('error', broken);
  ex.body = main;
  return copy;
}

export class Mirrors {
  private inFlight = 0;
  /** Copies dropped because `maxInFlight` were under way (for logs and tests). */
  dropped = 0;
  sent = 0;

  constructor(
    /** The stack below the route stage (balance, endpoint): a mirror is sent like any request. */
    private readonly inner: HttpService,
    private readonly log: Logger,
    private readonly maxInFlight = 64,
  ) {}

  private readonly done = (): void => {
    this.inFlight--;
  };

  /** Sends a copy of `ex` as it is now (filters before the mirror applied) to `target`, with probability num/den. */
  send(ex: HttpExchange, target: BackendTarget | null, numerator: number, denominator: number): void {
    if (target === null) return;
    if (numerator < denominator && Math.random() * denominator >= numerator) return;
    if (this.inFlight >= this.maxInFlight) {
      if (this.dropped++ % 1000 === 0) this.log.warn('mirror dropped: too many mirrored requests in flight', { route: ex.route, mirror: target.name, inFlight: this.inFlight, dropped: this.dropped });
      return;
    }
    this.inFlight++;
    this.sent++;
    const body = ex.body === null ? null : teeBody(ex, ex.body);
    const m = new HttpExchange(ex.direction, new DiscardDownstream(ex.downstream), ex.method, ex.authority, ex.path, ex.headers.slice(), body, ex.bodyLength, ex.grpc, this.done, ignoreError);
    m.source = ex.source;
    m.route = ex.route;
    m.service = target.service;
    m.port = target.port;
    m.backend = target;
    m.destination = target.service.name;
    try {
      this.inner.call(m);
    } catch (err) {
      this.log.warn('mirror failed', { mirror: target.name, reason: (err as Error).message });
      m.onDownstreamClosed();
    }
  }
}
