// A pool of HTTP/1.1 connections to one endpoint: reuses idle connections (most recent first, so that the rest can
// time out), opens new ones on demand, and closes gracefully when the endpoint leaves the config.

import type { Socket } from 'node:net';
import type { HttpClient, ResponseSink, UpstreamCall, UpstreamRequest } from '../../stack/http-types.js';
import { H1Call, H1Connection, type H1ConnectionOwner } from './connection.js';

export interface H1PoolOptions {
  /** Opens a new socket; `event` is the one that says it is ready ('connect' or 'secureConnect'). */
  connect(): { socket: Socket; event: 'connect' | 'secureConnect' };
  connectTimeoutMs: number;
  /** A request fails when the upstream sends nothing for this long. */
  idleTimeoutMs: number;
  /** An idle pooled connection is closed after this; keep it below the server's own keep-alive timeout. */
  poolIdleMs: number;
  maxIdle?: number;
  maxHeadBytes?: number;
}

export class H1Pool implements HttpClient, H1ConnectionOwner {
  private readonly idle: H1Connection[] = [];
  private readonly all = new Set<H1Connection>();
  private closing = false;
  readonly connectTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly poolIdleMs: number;
  readonly maxHeadBytes: number;
  private readonly maxIdle: number;

  constructor(private readonly options: H1PoolOptions) {
    this.connectTimeoutMs = options.connectTimeoutMs;
    this.idleTimeoutMs = options.idleTimeoutMs;
    this.poolIdleMs = options.poolIdleMs;
    this.maxHeadBytes = options.maxHeadBytes ?? 64 * 1024;
    this.maxIdle = options.maxIdle ?? 256;
  }

  get size(): number {
    return this.all.size;
  }

  get idleCount(): number {
    return this.idle.length;
  }

  request(req: UpstreamRequest, sink: ResponseSink): UpstreamCall {
    const call = new H1Call();
    this.acquire(false).dispatch(req, sink, call);
    return call;
  }

  replay(req: UpstreamRequest, sink: ResponseSink, call: H1Call): void {
    this.acquire(true).dispatch(req, sink, call);
  }

  private acquire(fresh: boolean): H1Connection {
    if (!fresh) {
      let conn = this.idle.pop();
      while (conn !== undefined && !conn.usable) conn = this.idle.pop();
      if (conn !== undefined) return conn;
    }
    const { socket, event } = this.options.connect();
    const conn = new H1Connection(socket, this, event);
    this.all.add(conn);
    return conn;
  }

  release(conn: H1Connection): void {
    if (this.closing || this.idle.length >= this.maxIdle) {
      conn.destroy();
      return;
    }
    this.idle.push(conn);
  }

  forget(conn: H1Connection): void {
    this.all.delete(conn);
    const i = this.idle.indexOf(conn);
    if (i !== -1) this.idle.splice(i, 1);
  }

  close(): void {
    this.closing = true;
    for (const conn of [...this.all]) conn.close();
  }
}
