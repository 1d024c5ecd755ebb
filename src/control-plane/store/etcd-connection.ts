// The etcd client as the etcd store uses it: one attempt per call (the store decides what is safe to retry), quick
// reconnects to a restarted member, calls that a member without a raft leader refuses at once, and error triage.

import { createRequire } from 'node:module';
import { Etcd3, type IOptions, type IResponseStream } from 'etcd3';
import type * as Grpc from '@grpc/grpc-js';

type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

// etcd3's defaults retry every call three times and shun a member for 5 s after three failures, so a restarted member
// is ignored for a while and an ambiguous write may be sent twice. The store retries itself, so each call runs once.
const NEVER_ABORTED = new AbortController().signal;
const ONE_ATTEMPT = { execute: async (fn: (context: { signal: AbortSignal }) => unknown) => fn({ signal: NEVER_ABORTED }) } as unknown as Policy;

// The grpc-js instance etcd3 itself loads (resolved from etcd3's folder), for call credentials that add metadata.
const grpc = createRequire(createRequire(import.meta.url).resolve('etcd3'))('@grpc/grpc-js') as typeof Grpc;

/**
 * etcd's "require leader" metadata: a member that has lost its leader answers `etcdserver: no leader` at once instead of
 * holding the call until its own timeout, and cancels such watch and keepalive streams, so the client moves to a member
 * that still has quorum.
 */
const REQUIRE_LEADER = grpc.credentials.createFromMetadataGenerator((_params, callback) => {
  const md = new grpc.Metadata();
  md.set('hasleader', 'true');
  callback(null, md);
});

const GRPC_OPTIONS = {
  // A member that comes back is dialled again within a second (grpc's default backoff grows to two minutes).
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
  // Channels belong to this store alone, so close() really closes them.
  'grpc.use_local_subchannel_pool': 1,
  // A member that vanishes without closing its sockets is noticed in about 15 s (etcd refuses pings under 5 s apart).
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
};

export class EtcdConnection {
  readonly client: Etcd3;

  constructor(readonly endpoints: readonly string[]) {
    this.client = new Etcd3({ hosts: [...endpoints], faultHandling: { host: () => ONE_ATTEMPT, global: ONE_ATTEMPT }, grpcOptions: GRPC_OPTIONS });
  }

  /** Options for a unary call that must finish by `deadline` (ms since the epoch). */
  call(deadline: number): Grpc.CallOptions {
    return { deadline, credentials: REQUIRE_LEADER };
  }

  /** Options for a long-lived stream (watch, lease keepalive). */
  stream(): Grpc.CallOptions {
    return { credentials: REQUIRE_LEADER };
  }

  close(): void {
    this.client.close();
  }
}

/** Hands a stream's responses, and its failure or end, to the handlers for as long as `current()` holds. */
export function follow<R>(stream: IResponseStream<R>, what: string, current: () => boolean, onData: (res: R) => void, onBroken: (err: unknown) => void): void {
  stream.on('data', (res: R) => {
    if (current()) onData(res);
  });
  stream.on('error', (err: Error) => {
    if (current()) onBroken(err);
  });
  stream.on('end', () => {
    if (current()) onBroken(new Error(`the ${what} stream ended`));
  });
}

/**
 * True when the request certainly did not take effect, so sending it again cannot apply it twice: no connection was
 * made, or the member refused it before proposing it. A timeout or a dropped connection is ambiguous and returns false.
 */
export function wasNotApplied(err: unknown): boolean {
  const msg = err instanceof Error ? err.message : String(err);
  return /No connection established|ECONNREFUSED|etcdserver: no leader|etcdserver: too many requests|etcdserver: not capable|requested lease not found|already closed|Channel closed before call started/.test(msg);
}

export function isLeaseNotFound(err: unknown): boolean {
  return err instanceof Error && err.message.includes('requested lease not found');
}

/** The part of a gRPC / etcd error message that says what happened, without the status prefix and resolver notes. */
export function reasonOf(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  const text = msg.replace(/^\d+ [A-Z_]+: /, '').replace(/\.?\s*Resolution note:.*$/s, '').replace(/^No connection established\. Last error: (Error: )?/, 'no connection: ');
  if (text.startsWith('etcdserver: no leader')) return 'no etcd member has a raft leader (quorum lost)';
  const timedOut = /^Deadline exceeded after ([\d.]+)s.*remote_addr=([\d.:[\]a-f]+)/.exec(text);
  if (timedOut !== null) return `no answer from ${timedOut[2]} within ${timedOut[1]} s`;
  return text;
}

/** A jittered exponential delay for retry number `attempt` (0-based), from `base` up to `max` ms. */
export function retryDelay(attempt: number, base = 50, max = 1000): number {
  const d = Math.min(max, base * 2 ** Math.min(attempt, 16));
  return d / 2 + Math.random() * (d / 2);
}

/** Resolves after `ms`, or at once when `signal` aborts (a store that closes does not wait out its retry delays). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
