// A live tap as a Preact hook: streams /api/v1/tap NDJSON while the path is set, keeps the newest events (bounded),
// and batches renders so that a busy service does not re-render the page per event.

import { useEffect, useState } from 'preact/hooks';
import { ApiError, streamNdjson, type TapEvent } from './api.js';
import { insertNewestFirst, type Tapped } from './tap-events.js';

export type TapState = 'idle' | 'connecting' | 'live' | 'ended' | 'error';

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
      events = insertNewestFirst(events, { ...(v as TapEvent), seq: seen }, keep);
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
