// Conversions between the flat header lists of the proxy and Node's HTTP/2 header objects.

import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import type { HeaderList } from '../../stack/http-types.js';

/** Regular fields of an HTTP/2 header block as a flat list (pseudo-headers skipped, arrays expanded). */
export function h2ToList(headers: IncomingHttpHeaders): HeaderList {
  const out: HeaderList = [];
  for (const name in headers) {
    if (name.charCodeAt(0) === 58 /* ':' */) continue;
    const v = headers[name];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) out.push(name, x);
    else out.push(name, String(v));
  }
  return out;
}

/** Adds a flat list to an HTTP/2 header object, joining repeated fields into arrays (Node sends one field each). */
export function listIntoH2(list: HeaderList, out: OutgoingHttpHeaders): OutgoingHttpHeaders {
  for (let i = 0; i < list.length; i += 2) {
    const name = list[i] as string;
    const value = list[i + 1] as string;
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[name] = [String(prev), value];
  }
  return out;
}
