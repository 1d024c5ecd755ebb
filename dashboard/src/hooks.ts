// Preact hooks shared by the pages: polling an API path, the hash route, and a ticking clock for "3s ago".

import { useEffect, useState } from 'preact/hooks';
import { ApiError, getJson } from './api.js';

export interface Polled<T> {
  data: T | undefined;
  error: ApiError | undefined;
  /** When the last answer (good or bad) came. */
  at: number;
}

/**
 * GETs `path` now and every `everyMs` while mounted (null: nothing); keeps the last good data through errors. An
 * endpoint this control plane does not have (404) is asked again only every `missingEveryMs`.
 */
export function usePoll<T>(path: string | null, everyMs: number, missingEveryMs = everyMs): Polled<T> {
  const [state, setState] = useState<Polled<T>>({ data: undefined, error: undefined, at: 0 });
  useEffect(() => {
    setState({ data: undefined, error: undefined, at: 0 });
    if (path === null) return;
    const abort = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tick = async () => {
      let wait = everyMs;
      try {
        const data = await getJson<T>(path, abort.signal);
        setState({ data, error: undefined, at: Date.now() });
      } catch (err) {
        if (abort.signal.aborted) return;
        const error = err instanceof ApiError ? err : new ApiError(0, (err as Error).message);
        if (error.missing) wait = missingEveryMs;
        setState((s) => ({ data: error.missing ? undefined : s.data, error, at: Date.now() }));
      }
      if (!abort.signal.aborted) timer = setTimeout(() => void tick(), wait);
    };
    void tick();
    return () => {
      abort.abort();
      clearTimeout(timer);
    };
  }, [path, everyMs, missingEveryMs]);
  return state;
}

export interface Route {
  page: 'topology' | 'service' | 'tap' | 'traces' | 'trace' | 'proxies';
  params: string[];
  query: URLSearchParams;
}

/** `#/service/default/web`, `#/tap?service=web`, `#/traces/ID`; anything else is the topology. */
export function parseHash(hash: string): Route {
  const [pathPart = '', queryPart = ''] = hash.replace(/^#\/?/, '').split('?', 2);
  const parts = pathPart.split('/').filter((p) => p !== '').map(decodeURIComponent);
  const query = new URLSearchParams(queryPart);
  const [head, ...params] = parts;
  if (head === 'service' && params.length >= 2) return { page: 'service', params, query };
  if (head === 'traces' && params.length === 1) return { page: 'trace', params, query };
  if (head === 'tap' || head === 'traces' || head === 'proxies') return { page: head, params, query };
  return { page: 'topology', params: [], query };
}

export function useRoute(): Route {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return parseHash(hash);
}

/** The current time, re-rendering every `everyMs`. */
export function useNow(everyMs = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(t);
  }, [everyMs]);
  return now;
}

export const serviceHref = (namespace: string, name: string) => `#/service/${encodeURIComponent(namespace)}/${encodeURIComponent(name)}`;
