// Self-contained load worker of the handshake benchmark, fed to `node -` on stdin (builtins only): CONNECTIONS closed
// loops, each opening a new connection (TLS 1.3 with a client certificate, or plain TCP when CERT is unset), sending
// one small HTTP/1.1 request with `Connection: close`, reading the answer to the server's FIN, and starting over.
// The loops start at START_AT (epoch ms), so that the workers of one run share the same window; one JSON line out.
import { readFileSync } from 'node:fs';
import net, { type Socket } from 'node:net';
import tls from 'node:tls';

/** The JSON line the worker prints. */
export interface HandshakeWorkerResult {
  ok: number;
  /** Failed connections, and those still open when the bounded wait ended. */
  errors: number;
  seconds: number;
  latenciesUs: number[];
  /** The worker's own CPU time (user + system). */
  cpuSeconds: number;
  firstError?: string;
}

const port = Number(process.env.TARGET_PORT);
const connections = Number(process.env.CONNECTIONS ?? '8');
const durationMs = Number(process.env.DURATION_MS ?? '1000');
const path = process.env.REQUEST_PATH ?? '/small';
/** The SPIFFE ID the server's certificate must carry (the chain itself is verified against CA). */
const serverId = process.env.SERVER_ID ?? '';
const certFile = process.env.CERT;

const request = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n`);
const okStatus = Buffer.from('HTTP/1.1 200 ');
const tlsOptions: tls.ConnectionOptions | null =
  certFile === undefined || certFile === ''
    ? null
    : {
        host: '127.0.0.1',
        port,
        // One context for every connection: building it (parsing the key and certificates) per connection costs the
        // client more than the handshake itself.
        secureContext: tls.createSecureContext({
          cert: readFileSync(certFile),
          key: readFileSync(process.env.KEY ?? ''),
          ca: readFileSync(process.env.CA ?? ''),
          minVersion: 'TLSv1.3',
        }),
        minVersion: 'TLSv1.3',
        maxVersion: 'TLSv1.3',
        ALPNProtocols: ['http/1.1'],
        rejectUnauthorized: true,
        // The leaves name a SPIFFE URI, not 127.0.0.1: check that identity instead of a host name.
        checkServerIdentity: (_host, cert) =>
          serverId === '' || (cert.subjectaltname ?? '').split(', ').includes(`URI:${serverId}`)
            ? undefined
            : new Error(`server identity is not ${serverId}`),
      };

let ok = 0;
let errors = 0;
let firstError: string | undefined;
const latenciesUs: number[] = [];
let active = 0;
let stopAt = 0;
let lastDone = 0;

function one(): void {
  const t0 = performance.now();
  active++;
  let head: Buffer | null = null;
  let finished = false;
  const finish = (err: string | null): void => {
    if (finished) return;
    finished = true;
    active--;
    const now = performance.now();
    lastDone = now;
    if (err === null) {
      ok++;
      latenciesUs.push(Math.round((now - t0) * 1000));
    } else {
      errors++;
      firstError ??= err;
    }
    if (now < stopAt) one();
  };
  const socket: Socket =
    tlsOptions === null
      ? net.connect({ host: '127.0.0.1', port, noDelay: true }, () => socket.write(request))
      : tls.connect(tlsOptions, () => socket.write(request));
  socket.setNoDelay(true);
  socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
  socket.on('data', (chunk: Buffer) => {
    if (head === null) head = chunk;
  });
  socket.on('end', () => {
    socket.end();
    const good = head !== null && head.length >= okStatus.length && head.subarray(0, okStatus.length).equals(okStatus);
    finish(good ? null : `unexpected answer: ${head === null ? '(none)' : head.subarray(0, 40).toString('latin1')}`);
  });
  socket.on('error', (e) => finish(e.message));
  socket.on('close', () => finish('closed before the answer ended'));
}

const startAt = Number(process.env.START_AT ?? '0');
await new Promise((resolve) => setTimeout(resolve, Math.min(5000, Math.max(0, startAt - Date.now()))));
const cpu0 = process.cpuUsage();
const t0 = performance.now();
stopAt = t0 + durationMs;
for (let i = 0; i < connections; i++) one();
// Bounded wait for the last connections (each has its own 10 s socket timeout).
const poll = setInterval(() => {
  if (active > 0 && performance.now() < stopAt + 15_000) return;
  clearInterval(poll);
  const cpu = process.cpuUsage(cpu0);
  const result: HandshakeWorkerResult = {
    ok,
    errors: errors + active,
    seconds: ((active > 0 ? performance.now() : Math.max(lastDone, stopAt)) - t0) / 1000,
    latenciesUs,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    ...(firstError === undefined ? {} : { firstError }),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
}, 5);
