// For transport unit tests: a ResponseSink that resolves with the response status or the error, and a bodiless GET.

import type { MycelError } from '../../src/core/errors.js';
import type { HeaderList, ResponseSink, UpstreamRequest } from '../../src/proxy/stack/http-types.js';

/** A sink that resolves with the status, or with the error code. */
export function collect(): { sink: ResponseSink; done: Promise<{ status: number; error: MycelError | null }> } {
  let resolve!: (v: { status: number; error: MycelError | null }) => void;
  const done = new Promise<{ status: number; error: MycelError | null }>((r) => (resolve = r));
  let status = 0;
  const sink: ResponseSink = {
    onInformational() {},
    onResponseHead(s: number) {
      status = s;
    },
    onResponseData: () => true,
    onResponseEnd: () => resolve({ status, error: null }),
    onResponseError: (error: MycelError) => resolve({ status, error }),
  };
  return { sink, done };
}

/** A GET without a body for `authority`. */
export const get = (authority: string): UpstreamRequest => ({ method: 'GET', authority, path: '/', headers: [] as HeaderList, body: null, bodyLength: 0, requestTrailers: () => null, countBody: () => {} });
