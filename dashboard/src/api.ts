// The control-plane API as the dashboard reads it: the response shapes (from the shared contracts), JSON requests
// with the session cookie, and the one place that notices a missing or expired sign-in.

import type { EdgeStats, ProxyStatus, ReceivedSpan, RouteStats, ServiceStats, Signals, StatsReport, TapEvent, TimelinePoint, TraceSummary } from '../../src/api/v1alpha1/control-api.js';
import { NdjsonSplitter } from './ndjson.js';

export type { EdgeStats, RouteStats, ServiceStats, TapEvent, TimelinePoint, TraceSummary };
export type Golden = Signals;
export type Stats = StatsReport;
export type Proxy = ProxyStatus;

/** A span of GET /api/v1/traces/ID. */
export type Span = ReceivedSpan;

export interface Endpoint {
  address: string;
  port: number;
  labels: Record<string, string>;
  source: 'static' | 'registered';
  ready: boolean;
  proxyId?: string;
  leaseExpires?: string;
  streamOpen?: boolean;
}

export interface Resource {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: Record<string, unknown>;
}

/** A failed request, with what the page should say about it. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
  /** The control plane is older than the page: this endpoint is not there yet. */
  get missing(): boolean {
    return this.status === 404;
  }
}

type SignedOutListener = () => void;
const signedOutListeners = new Set<SignedOutListener>();

/** Called whenever the API answers 401: the page then shows how to sign in. */
export function onSignedOut(l: SignedOutListener): () => void {
  signedOutListeners.add(l);
  return () => signedOutListeners.delete(l);
}

async function failure(res: Response, path: string): Promise<ApiError> {
  if (res.status === 401) for (const l of signedOutListeners) l();
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = (await res.json()) as { message?: string };
    if (typeof body.message === 'string') message = body.message;
  } catch {
    /* not JSON: keep the status line */
  }
  return new ApiError(res.status, `${path}: ${message}`);
}

export async function getJson<T>(path: string, signal?: AbortSignal): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, { credentials: 'same-origin', headers: { accept: 'application/json' }, ...(signal ? { signal } : {}) });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, 'cannot reach the control plane (is `mycel up` still running?)');
  }
  if (!res.ok) throw await failure(res, path);
  return (await res.json()) as T;
}

/** Streams an NDJSON response, calling `onValue` per parsed line, until it ends or `signal` aborts. */
export async function streamNdjson(path: string, signal: AbortSignal, onValue: (v: unknown) => void, onOpen?: () => void): Promise<void> {
  const res = await fetch(path, { credentials: 'same-origin', headers: { accept: 'application/x-ndjson' }, signal });
  if (!res.ok || res.body === null) throw await failure(res, path);
  onOpen?.();
  const splitter = new NdjsonSplitter();
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    for (const v of splitter.push(value)) onValue(v);
  }
  for (const v of splitter.end()) onValue(v);
}
