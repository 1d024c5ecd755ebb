// Small HTTP client helpers for tests: one request with node:http (keep-alive agent optional), collecting the body.

import http, { type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import net from 'node:net';

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  trailers: NodeJS.Dict<string>;
}

export function request(
  addr: string,
  opts: { method?: string; path?: string; headers?: OutgoingHttpHeaders; body?: Buffer | string | null; agent?: http.Agent | false; timeoutMs?: number } = {},
): Promise<Reply> {
  const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, method: opts.method ?? 'GET', path: opts.path ?? '/', headers: opts.headers ?? {}, agent: opts.agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks), trailers: res.trailers }));
      res.on('error', reject);
    });
    req.setTimeout(opts.timeoutMs ?? 15_000, () => req.destroy(new Error('test request timed out')));
    req.on('error', reject);
    if (opts.body !== undefined && opts.body !== null) req.end(opts.body);
    else req.end();
  });
}

/** The sum of a metric's series whose labels include `labels`, from a sidecar's admin /metrics. */
export async function metric(admin: string, name: string, labels: Record<string, string>): Promise<number> {
  const text = (await request(admin, { path: '/metrics' })).body.toString();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{')) continue;
    const close = line.lastIndexOf('}');
    const have = line.slice(name.length + 1, close);
    if (Object.entries(labels).every(([k, v]) => have.includes(`${k}="${v}"`))) sum += Number(line.slice(close + 2));
  }
  return sum;
}

export function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Runs a command (curl, h2load ...) and returns its output; never throws on a non-zero exit. */
export function run(cmd: string, args: string[], input?: string, timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    p.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', (err) => {
      clearTimeout(t);
      resolve({ code: -1, stdout, stderr: stderr + String(err) });
    });
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) p.stdin.end(input);
    else p.stdin.end();
  });
}

/** True when `cmd` is on PATH. */
export async function have(cmd: string): Promise<boolean> {
  const r = await run('sh', ['-c', `command -v ${cmd}`]);
  return r.code === 0 && r.stdout.trim().length > 0;
}

/**
 * Tests that need a system package: outside CI they skip with a message naming the package; under CI=true the
 * missing package is a failure.
 */
export async function requirePackage(t: { skip(msg: string): void }, cmd: string, debianPackage: string): Promise<boolean> {
  if (await have(cmd)) return true;
  const msg = `needs \`${cmd}\` from the Debian package ${debianPackage} (apt-get install -y ${debianPackage})`;
  if (process.env.CI === 'true') throw new Error(`CI=true: ${msg}`);
  t.skip(msg);
  return false;
}

/** A loopback port nothing listens on (bound and released), for "the app is down" cases. */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/**
 * A client that keeps one connection open across requests: `get` reports whether each request reused it, so a test
 * can prove that a config change dropped no connection.
 */
export function keepAliveClient(addr: string): { get(path: string, headers?: OutgoingHttpHeaders): Promise<{ status: number; reused: boolean }>; close(): void } {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const host = addr.slice(0, addr.lastIndexOf(':'));
  const port = Number(addr.slice(addr.lastIndexOf(':') + 1));
  return {
    get: (path, headers = {}) =>
      new Promise((resolve, reject) => {
        const req = http.request({ host, port, path, headers, agent }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
        });
        req.on('error', reject);
        req.end();
      }),
    close: () => agent.destroy(),
  };
}
