// The dashboard's own paths on the control plane's port: its files at `/`, sign-in (`/login` with a one-time code
// or, as a form post, the admin token) and sign-out. Everything else goes on to the API.

import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { TokenAuthority } from '../auth/tokens.js';
import { loadDashboardAssets, securityHeaders, type Asset } from './dashboard-assets.js';
import { clearedSessionCookie, LoginCodes, sessionCookie } from './dashboard-login.js';

type Req = Http2ServerRequest;
type Res = Http2ServerResponse;

const MAX_FORM = 4096;

export class DashboardRoutes {
  readonly codes = new LoginCodes();
  private assets: Map<string, Asset> | undefined;

  constructor(
    private readonly tokens: () => TokenAuthority | undefined,
    private readonly dir?: string,
  ) {}

  /** Handles the request and returns true when `path` is the dashboard's; false leaves it to the API. */
  handle(req: Req, res: Res, path: string, url: URL): boolean {
    if (path === '/login') {
      if (req.method === 'GET') this.loginWithCode(req, res, url.searchParams.get('code') ?? '');
      else if (req.method === 'POST') this.loginWithToken(req, res);
      else plain(res, 405, 'GET /login?code=CODE or POST /login with token=ADMIN_TOKEN\n');
      return true;
    }
    if (path === '/logout') {
      if (req.method !== 'POST') plain(res, 405, 'POST /logout\n');
      else redirect(res, '/', clearedSessionCookie(host(req)));
      return true;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    // Read on first use, so that a control plane without a built dashboard (tests, `tsx`) starts just the same.
    this.assets ??= loadDashboardAssets(this.dir);
    const asset = this.assets.get(path);
    if (asset === undefined) {
      if (path !== '/' && path !== '/index.html') return false;
      plain(res, 503, 'the dashboard is not built: run `npm run build` (it bundles dashboard/ into dist/dashboard/)\n');
      return true;
    }
    res.writeHead(200, asset.headers);
    if (req.method === 'HEAD') res.end();
    else res.end(asset.body);
    return true;
  }

  private startSession(req: Req, res: Res): void {
    const tokens = this.tokens();
    if (tokens === undefined) return plain(res, 503, 'the control plane is still starting; reload in a moment\n');
    const secure = (req.socket as { encrypted?: boolean }).encrypted === true;
    redirect(res, '/', sessionCookie(tokens, host(req), Date.now(), secure));
  }

  private loginWithCode(req: Req, res: Res, code: string): void {
    if (code !== '' && this.codes.redeem(code, Date.now())) return this.startSession(req, res);
    // The page says what happened and how to get a fresh link; the code never stays in the address bar.
    redirect(res, '/#login-expired');
  }

  /** The sign-in form of the dashboard: `token=ADMIN_TOKEN`, form-encoded, from this origin only. */
  private loginWithToken(req: Req, res: Res): void {
    const origin = req.headers.origin;
    if (typeof origin === 'string' && origin !== 'null' && new URL(origin).host !== host(req)) {
      return plain(res, 403, 'sign-in is accepted from the dashboard\'s own page only\n');
    }
    let body = '';
    let tooBig = false;
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      body += d;
      if (body.length > MAX_FORM) {
        tooBig = true;
        req.destroy();
      }
    });
    req.on('end', () => {
      if (tooBig) return;
      const token = new URLSearchParams(body).get('token')?.trim() ?? '';
      const principal = this.tokens()?.verify(token);
      if (principal?.role === 'admin') return this.startSession(req, res);
      redirect(res, '/#login-refused');
    });
  }
}

function host(req: Req): string | undefined {
  const h = req.headers[':authority'] ?? req.headers.host;
  return typeof h === 'string' ? h : undefined;
}

function plain(res: Res, status: number, text: string): void {
  res.writeHead(status, { ...securityHeaders(), 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
}

function redirect(res: Res, location: string, cookie?: string): void {
  res.writeHead(303, { ...securityHeaders(), location, 'cache-control': 'no-store', ...(cookie !== undefined ? { 'set-cookie': cookie } : {}) });
  res.end();
}
