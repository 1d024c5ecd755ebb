// Signs a browser in to the dashboard: asks the control plane (with the admin token) for a one-time login code,
// prints the link, and opens it in the desktop's browser when there is one; no browser is not a failure.

import { spawn } from 'node:child_process';
import { apiError, type ControlClient } from './control-client.js';

export interface DashboardLink {
  /** The dashboard's address (bookmarkable; it asks to sign in when the session is gone). */
  url: string;
  /** Signs in the browser that opens it first, within five minutes. */
  signInUrl: string;
  expiresAt: number;
}

export async function dashboardLink(client: ControlClient): Promise<DashboardLink> {
  const { status, body } = await client.request<{ path?: string; expiresAt?: number }>('POST', '/api/v1/dashboard/login-codes');
  if (status !== 200 || typeof body.path !== 'string') throw apiError(status, body, 'asking the control plane for a dashboard sign-in link');
  return { url: `${client.url}/`, signInUrl: client.url + body.path, expiresAt: body.expiresAt ?? Date.now() };
}

/** The command that opens a URL here: $BROWSER, else the platform's opener; null on a machine without a desktop. */
export function browserCommand(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform): string[] | null {
  if (env.BROWSER !== undefined && env.BROWSER.trim() !== '') return [env.BROWSER.trim()];
  if (platform === 'darwin') return ['open'];
  if (platform === 'win32') return ['cmd', '/c', 'start', '""'];
  // Linux and the BSDs: without a display (a server, a container, ssh) no browser can show anything.
  if ((env.DISPLAY ?? '') === '' && (env.WAYLAND_DISPLAY ?? '') === '') return null;
  return ['xdg-open'];
}

/** Starts the browser on `url` without waiting for it; resolves false when there is none to start. */
export function openInBrowser(url: string, command: string[] | null = browserCommand()): Promise<boolean> {
  if (command === null) return Promise.resolve(false);
  const [cmd, ...args] = command as [string, ...string[]];
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn(cmd, [...args, url], { detached: true, stdio: 'ignore' });
    } catch {
      resolve(false);
      return;
    }
    child.once('error', () => resolve(false));
    child.once('spawn', () => {
      child.unref();
      resolve(true);
    });
  });
}

/** Prints the links and opens the browser unless told not to; the lines `mycel dashboard` and `mycel up --open` share. */
export async function showDashboard(client: ControlClient, open: boolean, write: (s: string) => void): Promise<DashboardLink> {
  const link = await dashboardLink(client);
  write(`Dashboard: ${link.url}\n`);
  write(`Sign-in link (works once, for 5 minutes): ${link.signInUrl}\n`);
  if (!open) return link;
  const opened = await openInBrowser(link.signInUrl);
  write(opened ? 'Opened it in your browser.\n' : 'No browser to open here: open the sign-in link in a browser on this machine (or through an SSH tunnel to the port).\n');
  return link;
}
