// Self-contained Node worker for the gRPC and TCP scenarios, fed to `node -` on stdin (so no relative imports):
// WORKER=grpc-server | tcp-server serve on PORT; WORKER=grpc-load | tcp-load run MODE=throughput | latency against
// TARGET_PORT for DURATION_MS and print one JSON result line on stdout.
import { createServer, connect, type Socket } from 'node:net';
import type * as Grpc from '@grpc/grpc-js';

const env = (name: string, fallback?: string): string => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) {
    console.error(`worker: ${name} is required`);
    process.exit(2);
  }
  return v;
};
const num = (name: string, fallback?: number): number => Number(env(name, fallback === undefined ? undefined : String(fallback)));

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);
const grpcPath = '/mycel.bench.Echo/Unary';
const identity = (b: Buffer): Buffer => b;

interface Result {
  ok: number;
  errors: number;
  seconds: number;
  bytes?: number;
  latenciesUs?: number[];
  firstError?: string;
}

function print(r: Result): void {
  process.stdout.write(`${JSON.stringify(r)}\n`, () => process.exit(0));
}

/**
 * Open-loop pacing: every millisecond, starts as many operations as are due at `rate` per second since the
 * start, so that a slow response never delays the next request (no coordinated omission).
 */
function paced(rate: number, durationMs: number, start: () => void, done: () => void): void {
  const t0 = performance.now();
  let sent = 0;
  const timer = setInterval(() => {
    const elapsed = performance.now() - t0;
    const due = Math.min(Math.floor((Math.min(elapsed, durationMs) * rate) / 1000), Math.floor((durationMs * rate) / 1000));
    while (sent < due) {
      sent++;
      start();
    }
    if (elapsed >= durationMs) {
      clearInterval(timer);
      done();
    }
  }, 1);
}

function waitOutstanding(outstanding: () => number, maxMs: number, then: () => void): void {
  const t0 = Date.now();
  const poll = (): void => {
    if (outstanding() === 0 || Date.now() - t0 > maxMs) then();
    else setTimeout(poll, 5);
  };
  poll();
}

// ---- gRPC ----

async function grpcServer(): Promise<void> {
  const grpc = await import('@grpc/grpc-js');
  const server = new grpc.Server();
  const method = {
    path: grpcPath,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  };
  const unary: Grpc.handleUnaryCall<Buffer, Buffer> = (call, callback) => callback(null, call.request);
  server.addService({ Unary: method }, { Unary: unary });
  server.bindAsync(`127.0.0.1:${num('PORT')}`, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) {
      console.error(`grpc-server: ${err.message}`);
      process.exit(1);
    }
    console.log('grpc-server: listening');
  });
  process.on('SIGTERM', () => {
    server.forceShutdown();
    process.exit(0);
  });
}

async function grpcLoad(): Promise<void> {
  const grpc = await import('@grpc/grpc-js');
  const mode = env('MODE');
  const durationMs = num('DURATION_MS');
  const client = new grpc.Client(`127.0.0.1:${num('TARGET_PORT')}`, grpc.credentials.createInsecure(), {
    'grpc.default_authority': env('AUTHORITY', 'api'),
  });
  await new Promise<void>((res, rej) =>
    client.waitForReady(Date.now() + 5000, (err) => (err ? rej(new Error(`channel not ready: ${err.message}`)) : res())),
  );
  const payload = Buffer.alloc(num('PAYLOAD_BYTES', 32), 0x61);
  let ok = 0;
  let errors = 0;
  let outstanding = 0;
  let firstError: string | undefined;
  /** Starts one call; `onOk` runs on success, `after` after every call (success or not). */
  const call = (onOk: () => void, after?: () => void): void => {
    outstanding++;
    client.makeUnaryRequest(grpcPath, identity, identity, payload, (err) => {
      outstanding--;
      if (err) {
        errors++;
        firstError ??= err.message;
      } else onOk();
      after?.();
    });
  };
  // One call to open the connection (and the proxies' pools) before anything is timed.
  await new Promise<void>((res) => call(res, res));
  if (errors > 0) throw new Error(`first call failed: ${firstError ?? 'unknown error'}`);
  if (mode === 'throughput') {
    const concurrency = num('CONCURRENCY', 64);
    const t0 = performance.now();
    let running = true;
    const loop = (): void => {
      if (running) call(() => ok++, loop);
    };
    for (let i = 0; i < concurrency; i++) loop();
    setTimeout(() => {
      running = false;
      const seconds = (performance.now() - t0) / 1000;
      const result: Result = { ok, errors, seconds, ...(firstError ? { firstError } : {}) };
      client.close();
      print(result);
    }, durationMs);
  } else {
    const latenciesUs: number[] = [];
    const t0 = performance.now();
    paced(
      num('RATE', 1000),
      durationMs,
      () => {
        const started = nowUs();
        call(() => {
          ok++;
          latenciesUs.push(nowUs() - started);
        });
      },
      () =>
        waitOutstanding(() => outstanding, 3000, () => {
          client.close();
          print({ ok, errors: errors + outstanding, seconds: (performance.now() - t0) / 1000, latenciesUs, ...(firstError ? { firstError } : {}) });
        }),
    );
  }
}

// ---- TCP ----
// Protocol: the client's first byte picks the mode. 'S' (sink): the server counts received bytes and every 100 ms
// reports 16 bytes: the count and its own monotonic clock in ns (both u64 BE). 'E' (echo): everything is echoed.

function tcpServer(): void {
  const server = createServer((socket) => {
    socket.setNoDelay(true);
    let mode = 0;
    let count = 0;
    let timer: NodeJS.Timeout | undefined;
    socket.on('data', (chunk: Buffer) => {
      if (mode === 0) {
        mode = chunk[0] ?? 0;
        chunk = chunk.subarray(1);
        if (mode === 0x53) {
          timer = setInterval(() => {
            const report = Buffer.allocUnsafe(16);
            report.writeBigUInt64BE(BigInt(count), 0);
            report.writeBigUInt64BE(process.hrtime.bigint(), 8);
            socket.write(report);
          }, 100);
        }
      }
      if (mode === 0x53) count += chunk.length;
      else if (chunk.length > 0) socket.write(chunk);
    });
    const stop = (): void => clearInterval(timer);
    socket.on('close', stop);
    socket.on('error', stop);
  });
  server.listen(num('PORT'), '127.0.0.1', () => console.log('tcp-server: listening'));
  process.on('SIGTERM', () => process.exit(0));
}

function open(port: number, first: string): Promise<Socket> {
  return new Promise((res, rej) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.setNoDelay(true);
      s.write(first);
      res(s);
    });
    s.once('error', rej);
  });
}

async function tcpThroughput(port: number, durationMs: number): Promise<void> {
  const socket = await open(port, 'S');
  const chunk = Buffer.alloc(64 * 1024, 0x62);
  let pending: Buffer = Buffer.alloc(0);
  let base: { count: bigint; ns: bigint } | null = null;
  let last: { count: bigint; ns: bigint } | null = null;
  const warmupMs = Math.min(500, durationMs * 0.2);
  const t0 = performance.now();
  let firstError: string | undefined;
  socket.on('data', (data: Buffer) => {
    pending = pending.length === 0 ? data : Buffer.concat([pending, data]);
    while (pending.length >= 16) {
      const report = { count: pending.readBigUInt64BE(0), ns: pending.readBigUInt64BE(8) };
      pending = pending.subarray(16);
      if (base === null) {
        if (performance.now() - t0 >= warmupMs) base = report;
      } else last = report;
    }
  });
  socket.on('error', (e) => {
    firstError ??= e.message;
  });
  let running = true;
  const pump = (): void => {
    while (running && !socket.destroyed) {
      if (!socket.write(chunk)) {
        socket.once('drain', pump);
        return;
      }
    }
  };
  pump();
  setTimeout(() => {
    running = false;
    // One more report interval so that the last bytes sent inside the window are counted.
    setTimeout(() => {
      socket.destroy();
      const b = base as { count: bigint; ns: bigint } | null;
      const l = last as { count: bigint; ns: bigint } | null;
      if (b === null || l === null || l.ns <= b.ns) {
        print({ ok: 0, errors: 1, seconds: 0, bytes: 0, firstError: firstError ?? 'no throughput reports from the sink' });
        return;
      }
      print({ ok: 0, errors: firstError ? 1 : 0, seconds: Number(l.ns - b.ns) / 1e9, bytes: Number(l.count - b.count), ...(firstError ? { firstError } : {}) });
    }, 150);
  }, durationMs);
}

async function tcpLatency(port: number, durationMs: number): Promise<void> {
  const connections = num('CONNECTIONS', 10);
  const size = num('MESSAGE_BYTES', 64);
  const message = Buffer.alloc(size, 0x63);
  const latenciesUs: number[] = [];
  let ok = 0;
  let errors = 0;
  let firstError: string | undefined;
  let counting = false;
  interface Conn {
    socket: Socket;
    sentAt: number[];
    head: number;
    carry: number;
  }
  const conns: Conn[] = [];
  for (let i = 0; i < connections; i++) {
    const c: Conn = { socket: await open(port, 'E'), sentAt: [], head: 0, carry: 0 };
    c.socket.on('data', (data: Buffer) => {
      c.carry += data.length;
      while (c.carry >= size) {
        c.carry -= size;
        const started = c.sentAt[c.head++];
        if (started !== undefined && counting) {
          ok++;
          latenciesUs.push(nowUs() - started);
        }
      }
    });
    c.socket.on('error', (e) => {
      errors++;
      firstError ??= e.message;
    });
    conns.push(c);
  }
  const outstanding = (): number => conns.reduce((n, c) => n + (c.sentAt.length - c.head), 0);
  // Prime every connection (proxies open their upstream connections now) before timing.
  for (const c of conns) {
    c.sentAt.push(nowUs());
    c.socket.write(message);
  }
  await new Promise<void>((res) => waitOutstanding(outstanding, 5000, res));
  counting = true;
  let next = 0;
  const t0 = performance.now();
  paced(
    num('RATE', 1000),
    durationMs,
    () => {
      const c = conns[next++ % conns.length] as Conn;
      c.sentAt.push(nowUs());
      c.socket.write(message);
    },
    () =>
      waitOutstanding(outstanding, 3000, () => {
        const lost = outstanding();
        for (const c of conns) c.socket.destroy();
        print({ ok, errors: errors + lost, seconds: (performance.now() - t0) / 1000, latenciesUs, ...(firstError ? { firstError } : {}) });
      }),
  );
}

async function tcpLoad(): Promise<void> {
  const port = num('TARGET_PORT');
  const durationMs = num('DURATION_MS');
  if (env('MODE') === 'throughput') await tcpThroughput(port, durationMs);
  else await tcpLatency(port, durationMs);
}

const worker = env('WORKER');
const run: Record<string, () => void | Promise<void>> = {
  'grpc-server': grpcServer,
  'grpc-load': grpcLoad,
  'tcp-server': tcpServer,
  'tcp-load': tcpLoad,
};
const fn = run[worker];
if (!fn) {
  console.error(`worker: unknown WORKER=${worker}`);
  process.exit(2);
} else {
  Promise.resolve(fn()).catch((e: unknown) => {
    console.error(`worker ${worker}: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  });
}
