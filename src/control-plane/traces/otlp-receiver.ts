// The control plane's OTLP/HTTP trace receiver (POST /v1/traces): decodes a protobuf or JSON export request (gzip
// allowed), stores its spans in the recent-trace buffer and answers as an OTLP collector does.

import { gunzipSync } from 'node:zlib';
import { decodeOtlpJson, decodeOtlpProtobuf, type ReceivedSpan } from './otlp-decode.js';
import type { TraceBuffer } from './trace-buffer.js';

export interface ReceiverAnswer {
  status: number;
  body: string;
  type: string;
}

const MAX_UNZIPPED = 16 * 1024 * 1024;

function fail(status: number, message: string): ReceiverAnswer {
  // google.rpc.Status in JSON: what OTLP/HTTP answers a bad request with (clients only read the status code).
  return { status, body: JSON.stringify({ code: 3, message }) + '\n', type: 'application/json' };
}

export async function receiveOtlpTraces(contentType: string | undefined, contentEncoding: string | undefined, body: Buffer | null, traces: TraceBuffer): Promise<ReceiverAnswer> {
  if (body === null) return fail(413, 'the request body is too large');
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  const protobuf = type === 'application/x-protobuf' || type === 'application/protobuf';
  if (!protobuf && type !== 'application/json') return fail(415, 'expected content-type application/x-protobuf or application/json');
  let raw = body;
  let spans: ReceivedSpan[];
  try {
    if (contentEncoding === 'gzip') raw = gunzipSync(body, { maxOutputLength: MAX_UNZIPPED });
    else if (contentEncoding !== undefined && contentEncoding !== 'identity') return fail(415, `unsupported content-encoding ${contentEncoding}`);
    spans = protobuf ? await decodeOtlpProtobuf(raw) : decodeOtlpJson(JSON.parse(raw.toString('utf8')));
  } catch (err) {
    return fail(400, `not an OTLP ExportTraceServiceRequest: ${(err as Error).message}`);
  }
  traces.add(spans);
  // An empty ExportTraceServiceResponse: full success.
  return protobuf ? { status: 200, body: '', type: 'application/x-protobuf' } : { status: 200, body: '{}', type: 'application/json' };
}
