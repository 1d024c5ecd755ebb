// Turns `--store file:DIR` or `--store etcd:URL,URL...` into a Store; only the chosen implementation is loaded.

import type { Store } from './store.js';

export interface StoreSpec {
  kind: 'file' | 'etcd';
  /** file: the state directory; etcd: client URLs. */
  dir?: string;
  endpoints?: string[];
}

export function parseStoreSpec(text: string): StoreSpec | Error {
  const colon = text.indexOf(':');
  const scheme = colon === -1 ? text : text.slice(0, colon);
  const rest = colon === -1 ? '' : text.slice(colon + 1);
  if (scheme === 'file') return { kind: 'file', dir: rest || '.mycel' };
  if (scheme === 'etcd') {
    const endpoints = rest.split(',').map((e) => e.trim()).filter((e) => e.length > 0).map((e) => (/^https?:\/\//.test(e) ? e : `http://${e}`));
    if (endpoints.length === 0) return new Error('etcd: needs at least one client URL, e.g. etcd:http://127.0.0.1:2379');
    for (const e of endpoints) {
      try {
        new URL(e);
      } catch {
        return new Error(`etcd: "${e}" is not a URL`);
      }
    }
    return { kind: 'etcd', endpoints };
  }
  return new Error(`unknown store "${text}": expected file:DIR or etcd:URL[,URL...]`);
}

export async function openStore(spec: StoreSpec, options: { leaseTtlSeconds?: number } = {}): Promise<Store> {
  if (spec.kind === 'file') {
    const { FileStore } = await import('./file-store.js');
    return new FileStore(spec.dir ?? '.mycel');
  }
  const { EtcdStore } = await import('./etcd-store.js');
  return new EtcdStore({ endpoints: spec.endpoints ?? [], ...(options.leaseTtlSeconds !== undefined ? { leaseTtlSeconds: options.leaseTtlSeconds } : {}) });
}
