// A pool of HTTP/1.1 connections to one endpoint: reuses idle connections (most recent first, so that the rest can
// time out), opens new ones on demand, and closes gracefully when the endpoint leaves the config.

import type { Socket } from 'node:net';
import type { MycelError } from '../../../core/errors.js';
import type { HttpClient, ResponseSink, UpstreamCall, UpstreamRequest } from '../../stack/http-types.js';
import { connectionRefused, type ConnectionSlots } from '../connection-slots.js';
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
  /** The destination's connection and pending-request limits (shared with its other endpoints' clients). */
  slots?: ConnectionSlots;
}

export class H1Pool implements HttpClient, H1ConnectionOwner {
  private readonly idle: H1Connection[] = [];
  private readonly all = new Set<H1Connection>();
  /** Connections still connecting, each holding the pending slot of the request it was opened for. */
  private readonly connecting = new Set<H1Connection>();
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
    const conn = this.acquire(false);
    if (conn instanceof H1Connection) conn.dispatch(req, sink, call);
    else queueMicrotask(() => refuse(sink, call, conn));
    return call;
  }

  replay(req: UpstreamRequest, sink: ResponseSink, call: H1Call): void {
    const conn = this.acquire(true);
    if (conn instanceof H1Connection) conn.dispatch(req, sink, call);
    else refuse(sink, call, conn);
  }

  private acquire(fresh: boolean): H1Connection | MycelError {
    if (!fresh) {
      let conn = this.idle.pop();
      while (conn !== undefined && !conn.usable) conn = this.idle.pop();
      if (conn !== undefined) return conn;
    }
    const slots = this.options.slots;
    if (slots !== undefined) {
      // A new connection takes a connection slot, and its request waits (pending) until it is connected.
      const why = slots.connections.tryAcquire();
      if (why !== null) return connectionRefused(why, slots.connections);
      const pendingWhy = slots.pending.tryAcquire();
      if (pendingWhy !== null) {
        slots.connections.release();
        return connectionRefused(pendingWhy, slots.pending);
      }
    }
    let opened: { socket: Socket; event: 'connect' | 'secureConnect' };
    try {
      opened = this.options.connect();
    } catch (err) {
      slots?.pending.release();
      slots?.connections.release();
      throw err;
    }
    const conn = new H1Connection(opened.socket, this, opened.event);
    this.all.add(conn);
    if (slots !== undefined) this.connecting.add(conn);
    return conn;
  }

  connected(conn: H1Connection): void {
    if (this.connecting.delete(conn)) this.options.slots?.pending.release();
  }

  release(conn: H1Connection): void {
    if (this.closing || this.idle.length >= this.maxIdle) {
      conn.destroy();
      return;
    }
    this.idle.push(conn);
  }

  forget(conn: H1Connection): void {
    this.connected(conn);
    // (Called on destroy and again on close: only the first gives the slot back.)
    if (this.all.delete(conn)) this.options.slots?.connections.release();
    const i = this.idle.indexOf(conn);
    if (i !== -1) this.idle.splice(i, 1);
  }

  close(): void {
    this.closing = true;
    for (const conn of [...this.all]) conn.close();
  }
}

function refuse(sink: ResponseSink, call: H1Call, err: MycelError): void {
  if (!call.aborted) sink.onResponseError(err);
}
