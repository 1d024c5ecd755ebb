// A real @grpc/grpc-js test service defined in code (no .proto file): JSON messages for the structured methods and
// raw bytes for the large-message method, plus a matching generic client constructor.

import * as grpc from '@grpc/grpc-js';
import { createHash } from 'node:crypto';

export interface EchoRequest {
  text?: string;
  /** Unary: wait this long before answering (deadline tests). */
  delayMs?: number;
  /** ServerStream: how many messages to send ('fail-after' in text: then end with RESOURCE_EXHAUSTED). */
  count?: number;
  /** ClientStream and Bidi: a number to add up or echo. */
  n?: number;
  /** Flaky: how many first arrivals of the id in `text` fail with UNAVAILABLE (default 1). */
  failures?: number;
  /** Flaky: send the response headers before failing, so the status travels in trailers (not trailers-only). */
  headersFirst?: boolean;
}

export interface EchoReply {
  text?: string;
  /** Request metadata the server saw (lower-case keys, first value). */
  metadata?: Record<string, string>;
  i?: number;
  sum?: number;
  count?: number;
  /** The deadline the server saw for this call (ms since epoch, or 'Infinity'). */
  deadline?: string;
}

const json = {
  serialize: (v: unknown): Buffer => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer): never => JSON.parse(b.toString('utf8')) as never,
};
const raw = {
  serialize: (b: Buffer): Buffer => b,
  deserialize: (b: Buffer): Buffer => b,
};

function method(name: string, requestStream: boolean, responseStream: boolean, codec: { serialize: (v: never) => Buffer; deserialize: (b: Buffer) => unknown } = json) {
  return {
    path: `/mycel.test.Echo/${name}`,
    requestStream,
    responseStream,
    requestSerialize: codec.serialize,
    requestDeserialize: codec.deserialize,
    responseSerialize: codec.serialize,
    responseDeserialize: codec.deserialize,
    originalName: name,
  };
}

/** The service: /mycel.test.Echo/{Unary,ServerStream,ClientStream,Bidi,Fail,Slow,Big,Flaky}. */
export const ECHO_SERVICE = {
  Unary: method('Unary', false, false),
  ServerStream: method('ServerStream', false, true),
  ClientStream: method('ClientStream', true, false),
  Bidi: method('Bidi', true, true),
  Fail: method('Fail', false, false),
  Slow: method('Slow', false, false),
  Big: method('Big', false, false, raw),
  Flaky: method('Flaky', false, false),
} as unknown as grpc.ServiceDefinition;

export const EchoClient = grpc.makeGenericClientConstructor(ECHO_SERVICE, 'Echo');

export const MAX_MESSAGE = 16 * 1024 * 1024;

function metaObject(md: grpc.Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(md.getMap())) out[k] = Buffer.isBuffer(v) ? v.toString('base64') : String(v);
  return out;
}

export interface SlowCall {
  deadline: string;
  metadata: Record<string, string>;
  cancelled: Promise<void>;
}

export interface GrpcApp {
  port: number;
  /** Names of the Unary, Fail and Flaky calls that reached this server, in order (tells which of several servers served). */
  calls: string[];
  /** Each Slow call: the deadline the server derived from the grpc-timeout header, and when the call got cancelled. */
  slowCalls: SlowCall[];
  /** Resolves with the next Slow call to reach the server. */
  nextSlowCall(): Promise<SlowCall>;
  close(): Promise<void>;
}

export async function startGrpcApp(): Promise<GrpcApp> {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': MAX_MESSAGE, 'grpc.max_send_message_length': MAX_MESSAGE });
  const slowCalls: SlowCall[] = [];
  const calls: string[] = [];
  const slowWaiters: Array<(c: SlowCall) => void> = [];
  const flakyArrivals = new Map<string, number>();
  const deadlineOf = (call: { getDeadline(): grpc.Deadline }): string => {
    const d = call.getDeadline();
    return d instanceof Date ? String(d.getTime()) : String(d);
  };
  server.addService(ECHO_SERVICE, {
    Unary(call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
      calls.push('Unary');
      const md = new grpc.Metadata();
      md.set('x-initial-from-server', 'hello-initial');
      call.sendMetadata(md);
      const trailer = new grpc.Metadata();
      trailer.set('x-trailer-from-server', 'hello-trailer');
      trailer.set('x-bin-bin', Buffer.from([0, 1, 2, 250]));
      cb(null, { text: call.request.text ?? '', metadata: metaObject(call.metadata), deadline: deadlineOf(call) }, trailer);
    },
    ServerStream(call: grpc.ServerWritableStream<EchoRequest, EchoReply>) {
      const count = call.request.count ?? 0;
      let i = 0;
      const pump = () => {
        while (i < count) {
          const ok = call.write({ i, text: `message ${i}` });
          i++;
          if (!ok) {
            call.once('drain', pump);
            return;
          }
        }
        if (call.request.text === 'fail-after') {
          // A status after messages: the non-OK status and metadata travel in trailers that follow DATA frames.
          const md = new grpc.Metadata();
          md.set('x-sent-before-failure', String(count));
          call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: `gave up after ${count} messages`, metadata: md });
          return;
        }
        call.end();
      };
      pump();
    },
    ClientStream(call: grpc.ServerReadableStream<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
      let sum = 0;
      let count = 0;
      call.on('data', (m: EchoRequest) => {
        sum += m.n ?? 0;
        count++;
      });
      call.on('end', () => cb(null, { sum, count }));
    },
    Bidi(call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) {
      call.on('data', (m: EchoRequest) => call.write({ i: (m.n ?? 0) * 2, text: m.text ?? '' }));
      call.on('end', () => call.end());
    },
    Fail(call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
      calls.push('Fail');
      const md = new grpc.Metadata();
      md.set('x-failure-reason', `no such thing: ${call.request.text ?? ''}`);
      md.set('x-detail-bin', Buffer.from('binary-detail'));
      cb({ code: grpc.status.NOT_FOUND, details: `thing ${call.request.text ?? ''} not found`, metadata: md });
    },
    Slow(call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
      const cancelled = new Promise<void>((r) => call.once('cancelled', () => r()));
      const rec: SlowCall = { deadline: deadlineOf(call), metadata: metaObject(call.metadata), cancelled };
      slowCalls.push(rec);
      for (const w of slowWaiters.splice(0)) w(rec);
      const t = setTimeout(() => cb(null, { text: 'too late' }), call.request.delayMs ?? 0);
      call.once('cancelled', () => clearTimeout(t));
    },
    Flaky(call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
      calls.push('Flaky');
      const id = call.request.text ?? '';
      const nth = (flakyArrivals.get(id) ?? 0) + 1;
      flakyArrivals.set(id, nth);
      if (nth > (call.request.failures ?? 1)) return cb(null, { text: id, count: nth });
      if (call.request.headersFirst === true) call.sendMetadata(new grpc.Metadata());
      cb({ code: grpc.status.UNAVAILABLE, details: `arrival ${nth} of ${id} fails on purpose` });
    },
    Big(call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) {
      // Answer with the request reversed so that an echo bug cannot pass; the digest rides in the trailers.
      const out = Buffer.from(call.request).reverse();
      const md = new grpc.Metadata();
      md.set('x-request-sha256', createHash('sha256').update(call.request).digest('hex'));
      cb(null, out, md);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    port,
    calls,
    slowCalls,
    nextSlowCall: () => new Promise((r) => slowWaiters.push(r)),
    close: () =>
      new Promise<void>((resolve) => {
        server.forceShutdown();
        resolve();
      }),
  };
}

export type EchoClientInstance = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

/** A client for the Echo service on `addr` (plain h2c, as an app speaks to its sidecar). */
export function echoClient(addr: string, options: grpc.ClientOptions = {}): EchoClientInstance {
  return new EchoClient(addr, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': MAX_MESSAGE,
    'grpc.max_send_message_length': MAX_MESSAGE,
    ...options,
  }) as unknown as EchoClientInstance;
}

/** Promise wrapper for a unary call, returning the reply, initial metadata, status and trailing metadata. */
export function unary<Req, Res>(
  client: grpc.Client,
  name: string,
  req: Req,
  opts: { metadata?: grpc.Metadata; deadline?: grpc.Deadline } = {},
): Promise<{ reply: Res | undefined; error: grpc.ServiceError | null; headers: grpc.Metadata | null; status: grpc.StatusObject }> {
  const def = (ECHO_SERVICE as unknown as Record<string, { path: string; requestSerialize: (v: Req) => Buffer; responseDeserialize: (b: Buffer) => Res }>)[name]!;
  return new Promise((resolve) => {
    let reply: Res | undefined;
    let error: grpc.ServiceError | null = null;
    let headers: grpc.Metadata | null = null;
    const callOpts: grpc.CallOptions = opts.deadline !== undefined ? { deadline: opts.deadline } : {};
    const call = client.makeUnaryRequest<Req, Res>(def.path, def.requestSerialize, def.responseDeserialize, req, opts.metadata ?? new grpc.Metadata(), callOpts, (err, value) => {
      error = err;
      reply = value;
    });
    call.on('metadata', (md: grpc.Metadata) => (headers = md));
    call.on('status', (status: grpc.StatusObject) => {
      // The callback runs before 'status' in grpc-js; defer one tick to be safe.
      setImmediate(() => resolve({ reply, error, headers, status }));
    });
  });
}
