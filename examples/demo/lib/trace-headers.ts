// Trace context an app passes on from the request it serves to the calls it makes, as any traced app does (an
// OpenTelemetry SDK would do it for it). The sidecars then join every hop of a page view into one trace.

import type { IncomingHttpHeaders } from 'node:http';

const TRACE_HEADERS = ['traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags'];

export function traceHeaders(incoming: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of TRACE_HEADERS) {
    const value = incoming[name];
    if (typeof value === 'string') out[name] = value;
  }
  return out;
}
