// Flags shared by the commands that start sidecars or servers (`mycel proxy`, `mycel run`, `mycel control`): listen
// addresses, upstream bindings and endpoint labels.

import { parseListenAddress, type ListenAddress } from '../core/listen-address.js';
import type { UpstreamBindingOption } from '../proxy/sidecar.js';
import { CliError, EXIT_USAGE } from './exit.js';

/** A listen-address flag (`--inbound`, `--listen`, ...); a bad one is a usage error naming the flag. */
export function listenFlag(flag: string, text: string): ListenAddress {
  try {
    return parseListenAddress(text);
  } catch (err) {
    throw new CliError(`invalid ${flag}: ${(err as Error).message}`, EXIT_USAGE);
  }
}

/** `NAME[:SERVICEPORT]=[HOST:]PORT`, e.g. api=9191, api:8080=127.0.0.1:9191 */
export function parseUpstream(text: string): UpstreamBindingOption {
  const m = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)(?::(\d{1,5}))?=(.+)$/.exec(text);
  if (!m) throw new CliError(`invalid --upstream "${text}": expected NAME=PORT or NAME:SERVICEPORT=HOST:PORT`, EXIT_USAGE);
  let listen: ListenAddress;
  try {
    listen = parseListenAddress(m[4] as string);
  } catch (err) {
    throw new CliError(`invalid --upstream "${text}": ${(err as Error).message}`, EXIT_USAGE);
  }
  return { service: m[1] as string, ...(m[3] ? { servicePort: Number(m[3]) } : {}), listen };
}

/** `--label KEY=VALUE` flags as endpoint labels (Kubernetes-style keys and values). */
export function parseLabels(list: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of list) {
    const m = /^([A-Za-z0-9][-A-Za-z0-9_./]{0,62})=([-A-Za-z0-9_.]{0,63})$/.exec(l);
    if (!m) throw new CliError(`invalid --label "${l}": expected KEY=VALUE, e.g. version=v2 or zone=a`, EXIT_USAGE);
    out[m[1] as string] = m[2] as string;
  }
  return out;
}
