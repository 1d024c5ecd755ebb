// A live tap as a Preact hook: streams /api/v1/tap NDJSON while the path is set, keeps the newest events (bounded),
// and batches renders so that a busy service does not re-render the page per event.

import { useEffect, useState } from 'preact/hooks';
import { ApiError, streamNdjson, type TapEvent } from './api.js';

export type TapState = 'idle' | 'connecting' | 'live' | 'ended' | 'error';

/** An event with its arrival number, a stable key for the rows that show it. */
export type Tapped = TapEvent & { seq: number };

export interface Tap {
  events: Tapped[];
  /** Events seen since the stream opened, including those the filter or the bound dropped. */
  seen: number;
  state: TapState;
  error: string | null;
}

const RENDER_EVERY_MS = 250;

export function useTap(path: string | null, keep: number, accept: (e: TapEvent) => boolean = () => true): Tap {
  const [tap, setTap] = useState<Tap>({ events: [], seen: 0, state: 'idle', error: null });
  useEffect(() => {
    if (path === null) {
      setTap((t) => ({ ...t, state: 'idle' }));
      return;
    }
    const abort = new AbortController();
    let events: Tapped[] = [];
    let seen = 0;
    let dirty = false;
    setTap({ events: [], seen: 0, state: 'connecting', error: null });
    const flush = setInterval(() => {
      if (!dirty) return;
      dirty = false;
      setTap({ events, seen, state: 'live', error: null });
    }, RENDER_EVERY_MS);
    streamNdjson(path, abort.signal, (v) => {
      seen++;
      if (typeof v !== 'object' || v === null || !accept(v as TapEvent)) return;
      // Newest first; a fresh array so that Preact sees the change.
      events = [{ ...(v as TapEvent), seq: seen }, ...events.slice(0, keep - 1)];
      dirty = true;
    }, () => setTap((t) => ({ ...t, state: 'live' })))
      .then(() => {
        if (!abort.signal.aborted) setTap({ events, seen, state: 'ended', error: null });
      })
      .catch((err: unknown) => {
        if (abort.signal.aborted) return;
        const message = err instanceof ApiError && err.missing ? 'This control plane does not serve /api/v1/tap yet.' : (err as Error).message;
        setTap({ events, seen, state: 'error', error: message });
      });
    return () => {
      abort.abort();
      clearInterval(flush);
    };
    // `accept` is a filter fixed per page; the stream restarts when the path (its server-side filters) changes.
  }, [path, keep]);
  return tap;
}

/** A failure worth listing: the mesh failed it (error set), the app answered 5xx, or gRPC said no. */
export function isFailure(e: TapEvent): boolean {
  return e.error !== null || (e.status !== null && e.status >= 500) || grpcFailed(e);
}

/** A gRPC status other than OK (0); absent for plain HTTP. */
export function grpcFailed(e: TapEvent): boolean {
  return e.grpcStatus !== null && e.grpcStatus !== undefined && e.grpcStatus !== '' && Number(e.grpcStatus) !== 0;
}
