// How client commands reach the control plane: --control URL, else MYCEL_CONTROL, else the local mesh's state
// directory (.mycel/control.json), else https://127.0.0.1:7400; the admin token from --token FILE, MYCEL_TOKEN or
// .mycel/admin-token (or an admin client certificate: MYCEL_CERT/MYCEL_KEY, or .mycel/admin.crt/.key); the mesh roots
// that verify its TLS certificate from --ca FILE, MYCEL_CA or .mycel/ca.pem.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ControlTrust, type FetchLike } from '../security/control-trust.js';
import { CliError, EXIT_FAILURE } from './exit.js';

export interface ClientFlags {
  control?: string;
  token?: string;
  stateDir?: string;
  /** Mesh roots (PEM file) to verify the control plane's certificate with. */
  ca?: string;
}

export interface ControlClient {
  url: string;
  /** fetch() that verifies the control plane's certificate (no token added). */
  fetch: FetchLike;
  request<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
  /** A GET whose body streams for as long as the server sends it (no body timeout): the tap stream. */
  stream(path: string, signal: AbortSignal): Promise<{ status: number; body: AsyncIterable<Buffer> }>;
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export function controlClient(flags: ClientFlags): ControlClient {
  const dir = flags.stateDir ?? '.mycel';
  let url = flags.control ?? process.env.MYCEL_CONTROL;
  if (url === undefined) {
    const local = readText(join(dir, 'control.json'));
    if (local !== undefined) {
      try {
        url = (JSON.parse(local) as { url?: string }).url;
      } catch {
        /* a torn file: fall through to the default */
      }
    }
  }
  url ??= 'https://127.0.0.1:7400';
  if (!/^https?:\/\//.test(url)) url = `https://${url}`;
  url = url.replace(/\/+$/, '');
  let token: string | undefined;
  if (flags.token !== undefined) {
    token = readText(flags.token);
    if (token === undefined) throw new CliError(`cannot read the token file ${flags.token}`, EXIT_FAILURE);
  } else {
    token = process.env.MYCEL_TOKEN ?? readText(join(dir, 'admin-token'));
  }
  const base = url;
  const trust = clientTrust(flags, dir);
  const fetch = trust.fetch;
  return {
    url: base,
    fetch,
    async request<T>(method: string, path: string, body?: unknown) {
      let res: Response;
      try {
        res = await fetch(base + path, {
          method,
          headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          signal: AbortSignal.timeout(30_000),
        });
      } catch (err) {
        throw unreachable(base, err);
      }
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* not JSON: keep the text */
      }
      if (res.status === 401) throw refusedToken(base, token);
      return { status: res.status, body: parsed as T };
    },
    async stream(path: string, signal: AbortSignal) {
      const { request } = await import('undici');
      let res: Awaited<ReturnType<typeof request>>;
      try {
        res = await request(base + path, { method: 'GET', headers: token ? { authorization: `Bearer ${token}` } : {}, signal, headersTimeout: 30_000, bodyTimeout: 0, dispatcher: await trust.dispatcher() });
      } catch (err) {
        throw unreachable(base, err);
      }
      if (res.statusCode === 401) throw refusedToken(base, token);
      return { status: res.statusCode, body: res.body as AsyncIterable<Buffer> };
    },
  };
}

/** The roots to verify the control plane with, and the admin client certificate if one is set up. */
function clientTrust(flags: ClientFlags, dir: string): ControlTrust {
  const caFile = flags.ca ?? process.env.MYCEL_CA;
  let caPem: string | undefined;
  if (caFile !== undefined) {
    caPem = readText(caFile);
    if (caPem === undefined) throw new CliError(`cannot read the mesh root file ${caFile} (--ca or MYCEL_CA)`, EXIT_FAILURE);
  } else caPem = readText(join(dir, 'ca.pem'));
  const trust = new ControlTrust(caPem !== undefined ? { caPem } : {});
  const cert = readText(process.env.MYCEL_CERT ?? join(dir, 'admin.crt'));
  const key = readText(process.env.MYCEL_KEY ?? join(dir, 'admin.key'));
  if (cert !== undefined && key !== undefined) trust.setClientCertificate(cert, key);
  return trust;
}

function unreachable(base: string, err: unknown): CliError {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? cause?.message ?? (err as { code?: string }).code ?? (err as Error).message;
  if (/certificate|self.signed|UNABLE_TO|CERT_|ERR_TLS/i.test(String(code))) {
    return new CliError(`cannot verify the control plane at ${base}: ${code}\n  fix: pass the mesh root with --ca FILE or MYCEL_CA (the control plane writes it to <state-dir>/ca.pem; \`mycel ca status\` on its host shows the bundle)`, EXIT_FAILURE);
  }
  return new CliError(`cannot reach the control plane at ${base}: ${code}\n  fix: start it (mycel control or mycel up), or point to it with --control URL or MYCEL_CONTROL`, EXIT_FAILURE);
}

function refusedToken(base: string, token: string | undefined): CliError {
  return new CliError(`the control plane at ${base} refused the token (${token === undefined ? 'none found' : 'invalid'})\n  fix: pass --token FILE with the admin token (written to .mycel/admin-token by mycel control), or set MYCEL_TOKEN`, EXIT_FAILURE);
}

/** Fails with the API's own message for an unexpected status. */
export function apiError(status: number, body: unknown, what: string): CliError {
  const b = body as { error?: string; message?: string } | string;
  const msg = typeof b === 'string' ? b.trim() : `${b.message ?? JSON.stringify(b)}`;
  return new CliError(`${what} failed (${status}): ${msg}`, EXIT_FAILURE);
}

/** Left-aligned columns, like kubectl's tables. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] as number))).join('   ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** A join token for one service (POST /api/v1/tokens with the admin token). */
export async function createJoinToken(client: ControlClient, service: string, namespace: string, o: { ttlSeconds?: number; singleUse?: boolean } = {}): Promise<string> {
  const { status, body } = await client.request<{ token?: string }>('POST', '/api/v1/tokens', { service, namespace, ...o });
  if (status !== 200 || typeof body.token !== 'string') throw apiError(status, body, `creating a join token for ${namespace}/${service}`);
  return body.token;
}

/** The control plane as the local mesh machinery (src/local) needs it: its URL, and join tokens from its API. */
export function meshAccess(client: ControlClient): { url: string; joinToken(service: string, namespace: string): Promise<string> } {
  return { url: client.url, joinToken: (service, namespace) => createJoinToken(client, service, namespace) };
}
