// Decodes OTLP/HTTP trace export requests (ExportTraceServiceRequest, protobuf or JSON) into flat span records for
// the recent-trace buffer. The protobuf wire is read with OpenTelemetry's own reader (loaded on first use); only the
// fields the buffer shows are kept, and names, attribute counts and values are bounded.

import type { ProtobufReader as Reader } from '@opentelemetry/otlp-transformer/build/src/common/protobuf/protobuf-reader.js';
import type { AttributeValue, ReceivedSpan, SpanKindName } from '../../api/v1alpha1/control-api.js';

export type { AttributeValue, ReceivedSpan, SpanKindName };

const KINDS: SpanKindName[] = ['unspecified', 'internal', 'server', 'client', 'producer', 'consumer'];
const MAX_ATTRIBUTES = 64;
const MAX_STRING = 1024;
const MAX_NAME = 256;
const STATUS_ERROR = 2;

function clip(s: string, max: number): string {
  return s.length > max ? s.slice(0, max) : s;
}

/** A span with its fields as read, before the resource's service name is known. */
interface RawSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string | null;
  name: string;
  kind: number;
  startNs: bigint;
  endNs: bigint;
  error: boolean;
  attributes: Record<string, AttributeValue>;
}

function finish(raw: RawSpan, service: string): ReceivedSpan | null {
  if (!/^[0-9a-f]{32}$/.test(raw.traceId) || !/^[0-9a-f]{16}$/.test(raw.spanId)) return null;
  const startTime = Number(raw.startNs / 1000n) / 1000;
  const durationMs = raw.endNs > raw.startNs ? Number((raw.endNs - raw.startNs) / 1000n) / 1000 : 0;
  const parent = raw.parentSpanId !== null && /^[0-9a-f]{16}$/.test(raw.parentSpanId) && raw.parentSpanId !== '0000000000000000' ? raw.parentSpanId : null;
  return { traceId: raw.traceId, spanId: raw.spanId, parentSpanId: parent, service, name: clip(raw.name, MAX_NAME), kind: KINDS[raw.kind] ?? 'unspecified', startTime, durationMs, status: raw.error ? 'error' : 'ok', attributes: raw.attributes };
}

function addAttribute(into: Record<string, AttributeValue>, key: string, value: AttributeValue | undefined): void {
  if (value === undefined || key.length === 0 || Object.keys(into).length >= MAX_ATTRIBUTES) return;
  into[clip(key, MAX_NAME)] = typeof value === 'string' ? clip(value, MAX_STRING) : value;
}

// ---- protobuf --------------------------------------------------------------------------------------------------

type ReaderClass = new (buf: Uint8Array) => Reader;
let readerClass: Promise<ReaderClass> | null = null;

function loadReader(): Promise<ReaderClass> {
  readerClass ??= import('@opentelemetry/otlp-transformer/build/src/common/protobuf/protobuf-reader.js').then((m) => m.ProtobufReader as ReaderClass);
  return readerClass;
}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;

class ProtoDecoder {
  constructor(private readonly R: ReaderClass) {}

  /** Calls `field` for each field of a message; `field` must consume the value or return false to skip it. */
  private each(buf: Uint8Array, field: (r: Reader, num: number, wire: number, buf: Uint8Array) => boolean): void {
    const r = new this.R(buf);
    while (!r.isAtEnd()) {
      const { fieldNumber, wireType } = r.readTag();
      if (!field(r, fieldNumber, wireType, buf)) r.skip(wireType);
    }
  }

  private fixed64(r: Reader, buf: Uint8Array): Buffer {
    const at = r.pos;
    if (at + 8 > buf.length) throw new Error('truncated fixed64 field');
    r.skip(WIRE_FIXED64);
    return Buffer.from(buf.buffer, buf.byteOffset + at, 8);
  }

  private anyValue(buf: Uint8Array): AttributeValue | undefined {
    let v: AttributeValue | undefined;
    this.each(buf, (r, num, wire, b) => {
      if (num === 1 && wire === WIRE_LEN) v = r.readString();
      else if (num === 2 && wire === WIRE_VARINT) v = r.readVarint() !== 0;
      else if (num === 3 && wire === WIRE_VARINT) v = r.readVarint();
      else if (num === 4 && wire === WIRE_FIXED64) v = this.fixed64(r, b).readDoubleLE(0);
      else return false;
      return true;
    });
    return v;
  }

  private keyValue(buf: Uint8Array, into: Record<string, AttributeValue>): void {
    let key = '';
    let value: AttributeValue | undefined;
    this.each(buf, (r, num, wire) => {
      if (num === 1 && wire === WIRE_LEN) key = r.readString();
      else if (num === 2 && wire === WIRE_LEN) value = this.anyValue(r.readBytes());
      else return false;
      return true;
    });
    addAttribute(into, key, value);
  }

  private span(buf: Uint8Array): RawSpan {
    const s: RawSpan = { traceId: '', spanId: '', parentSpanId: null, name: '', kind: 0, startNs: 0n, endNs: 0n, error: false, attributes: {} };
    this.each(buf, (r, num, wire, b) => {
      if (wire === WIRE_LEN) {
        if (num === 1) s.traceId = Buffer.from(r.readBytes()).toString('hex');
        else if (num === 2) s.spanId = Buffer.from(r.readBytes()).toString('hex');
        else if (num === 4) s.parentSpanId = Buffer.from(r.readBytes()).toString('hex');
        else if (num === 5) s.name = r.readString();
        else if (num === 9) this.keyValue(r.readBytes(), s.attributes);
        else if (num === 15) {
          this.each(r.readBytes(), (sr, sn, sw) => {
            if (sn !== 3 || sw !== WIRE_VARINT) return false;
            s.error = sr.readVarint() === STATUS_ERROR;
            return true;
          });
        } else return false;
        return true;
      }
      if (num === 6 && wire === WIRE_VARINT) s.kind = r.readVarint();
      else if (num === 7 && wire === WIRE_FIXED64) s.startNs = this.fixed64(r, b).readBigUInt64LE(0);
      else if (num === 8 && wire === WIRE_FIXED64) s.endNs = this.fixed64(r, b).readBigUInt64LE(0);
      else return false;
      return true;
    });
    return s;
  }

  request(buf: Uint8Array): ReceivedSpan[] {
    const out: ReceivedSpan[] = [];
    // ExportTraceServiceRequest.resource_spans (1) -> ResourceSpans { resource (1), scope_spans (2) } -> ScopeSpans.spans (2)
    this.each(buf, (r, num, wire) => {
      if (num !== 1 || wire !== WIRE_LEN) return false;
      const resourceAttrs: Record<string, AttributeValue> = {};
      const raws: RawSpan[] = [];
      this.each(r.readBytes(), (rr, rn, rw) => {
        if (rw !== WIRE_LEN) return false;
        if (rn === 1) this.each(rr.readBytes(), (ar, an, aw) => (an === 1 && aw === WIRE_LEN ? (this.keyValue(ar.readBytes(), resourceAttrs), true) : false));
        else if (rn === 2) this.each(rr.readBytes(), (sr, sn, sw) => (sn === 2 && sw === WIRE_LEN ? (raws.push(this.span(sr.readBytes())), true) : false));
        else return false;
        return true;
      });
      const service = typeof resourceAttrs['service.name'] === 'string' ? resourceAttrs['service.name'] : 'unknown';
      for (const raw of raws) {
        const s = finish(raw, service);
        if (s !== null) out.push(s);
      }
      return true;
    });
    return out;
  }
}

/** Decodes a protobuf ExportTraceServiceRequest; throws on a malformed body. */
export async function decodeOtlpProtobuf(body: Uint8Array): Promise<ReceivedSpan[]> {
  return new ProtoDecoder(await loadReader()).request(body);
}

// ---- JSON ------------------------------------------------------------------------------------------------------

interface JsonAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
}
interface JsonKeyValue {
  key?: string;
  value?: JsonAnyValue;
}
interface JsonSpan {
  traceId?: string;
  spanId?: string;
  parentSpanId?: string;
  name?: string;
  kind?: number;
  startTimeUnixNano?: string | number;
  endTimeUnixNano?: string | number;
  attributes?: JsonKeyValue[];
  status?: { code?: number };
}
interface JsonRequest {
  resourceSpans?: Array<{ resource?: { attributes?: JsonKeyValue[] }; scopeSpans?: Array<{ spans?: JsonSpan[] }> }>;
}

function jsonValue(v: JsonAnyValue | undefined): AttributeValue | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v.stringValue === 'string') return v.stringValue;
  if (typeof v.boolValue === 'boolean') return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (typeof v.doubleValue === 'number') return v.doubleValue;
  return undefined;
}

function jsonAttributes(list: JsonKeyValue[] | undefined, into: Record<string, AttributeValue>): void {
  if (!Array.isArray(list)) return;
  for (const kv of list) if (kv !== null && typeof kv.key === 'string') addAttribute(into, kv.key, jsonValue(kv.value));
}

function nanos(v: string | number | undefined): bigint {
  try {
    return v === undefined ? 0n : BigInt(typeof v === 'number' ? Math.trunc(v) : v);
  } catch {
    return 0n;
  }
}

/** Decodes an OTLP/JSON ExportTraceServiceRequest (ids in hex, as the OTLP JSON mapping has them). */
export function decodeOtlpJson(value: unknown): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  const req = value as JsonRequest;
  if (req === null || typeof req !== 'object' || !Array.isArray(req.resourceSpans)) throw new Error('expected {"resourceSpans": [...]}');
  for (const rs of req.resourceSpans) {
    if (rs === null || typeof rs !== 'object') continue;
    const resourceAttrs: Record<string, AttributeValue> = {};
    jsonAttributes(rs.resource?.attributes, resourceAttrs);
    const service = typeof resourceAttrs['service.name'] === 'string' ? resourceAttrs['service.name'] : 'unknown';
    for (const ss of Array.isArray(rs.scopeSpans) ? rs.scopeSpans : []) {
      for (const sp of Array.isArray(ss?.spans) ? ss.spans : []) {
        if (sp === null || typeof sp !== 'object') continue;
        const attributes: Record<string, AttributeValue> = {};
        jsonAttributes(sp.attributes, attributes);
        const raw: RawSpan = {
          traceId: String(sp.traceId ?? '').toLowerCase(),
          spanId: String(sp.spanId ?? '').toLowerCase(),
          parentSpanId: typeof sp.parentSpanId === 'string' && sp.parentSpanId !== '' ? sp.parentSpanId.toLowerCase() : null,
          name: typeof sp.name === 'string' ? sp.name : '',
          kind: typeof sp.kind === 'number' ? sp.kind : 0,
          startNs: nanos(sp.startTimeUnixNano),
          endNs: nanos(sp.endTimeUnixNano),
          error: sp.status?.code === STATUS_ERROR,
          attributes,
        };
        const s = finish(raw, service);
        if (s !== null) out.push(s);
      }
    }
  }
  return out;
}
