// Trace context propagation: reads W3C traceparent/tracestate and B3 (single `b3` and multi `x-b3-*`) from a request's
// header list, and writes the context of this hop's span back in the same styles. Pure functions, no allocation when
// a request carries no trace headers beyond the ids themselves.

import { randomFillSync } from 'node:crypto';

/** The span this proxy makes for one request, and how it continues (or starts) the trace. */
export interface SpanContext {
  /** 32 lower-case hex digits. */
  readonly traceId: string;
  /** 16 lower-case hex digits: this hop's span. */
  readonly spanId: string;
  /** The caller's span, or null for the root of a trace. */
  readonly parentSpanId: string | null;
  readonly sampled: boolean;
  /** W3C tracestate as received (vendor data, passed on untouched); null when absent. */
  readonly traceState: string | null;
}

/** What arrived with a request (the fields are valid or null). */
export interface IncomingTrace {
  traceId: string | null;
  parentId: string | null;
  /** The caller's sampling decision; null: none made (the receiver decides). */
  sampled: boolean | null;
  traceState: string | null;
  /** B3 style the request used: 0 none, 1 single `b3`, 2 multi `x-b3-*`. */
  b3: 0 | 1 | 2;
  /** The B3 trace id was 64 bits (16 hex digits): written back the same length. */
  b3Short: boolean;
  /** Whether any trace header is present (so rewriting must remove the old ones). */
  present: boolean;
}

const HEX32 = /^[0-9a-f]{32}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const ZERO32 = '00000000000000000000000000000000';
const ZERO16 = '0000000000000000';

/** Header names this module owns: removed from a request before the new context is written. */
export const TRACE_HEADERS: ReadonlySet<string> = new Set(['traceparent', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags']);

// ---- ids -------------------------------------------------------------------------------------------------------

const POOL = Buffer.allocUnsafe(4096);
let poolPos = POOL.length;

function randomHex(bytes: number): string {
  for (let tries = 0; tries < 4; tries++) {
    if (poolPos + bytes > POOL.length) {
      randomFillSync(POOL);
      poolPos = 0;
    }
    const s = POOL.toString('hex', poolPos, poolPos + bytes);
    poolPos += bytes;
    // All-zero ids are invalid in W3C; astronomically rare, but never emit one.
    if (s !== ZERO32 && s !== ZERO16) return s;
  }
  return bytes === 16 ? '00000000000000000000000000000001' : '0000000000000001';
}

export const newTraceId = (): string => randomHex(16);
export const newSpanId = (): string => randomHex(8);

// ---- reading ---------------------------------------------------------------------------------------------------

function parseTraceparent(value: string, into: IncomingTrace): boolean {
  const v = value.trim();
  // version-traceid-parentid-flags; a later version may append fields after a dash, which are ignored.
  if (v.length < 55 || (v.length > 55 && v[55] !== '-') || v[2] !== '-' || v[35] !== '-' || v[52] !== '-') return false;
  const version = v.slice(0, 2);
  if (!/^[0-9a-f]{2}$/.test(version) || version === 'ff' || (version === '00' && v.length !== 55)) return false;
  const traceId = v.slice(3, 35);
  const parentId = v.slice(36, 52);
  const flags = v.slice(53, 55);
  if (!HEX32.test(traceId) || traceId === ZERO32 || !HEX16.test(parentId) || parentId === ZERO16 || !/^[0-9a-f]{2}$/.test(flags)) return false;
  into.traceId = traceId;
  into.parentId = parentId;
  into.sampled = (parseInt(flags, 16) & 1) === 1;
  return true;
}

function b3Sampled(s: string): boolean | null {
  if (s === '1' || s === 'd' || s === 'true') return true;
  if (s === '0' || s === 'false') return false;
  return null;
}

function b3TraceId(id: string): string | null {
  const t = id.toLowerCase();
  if (HEX32.test(t)) return t === ZERO32 ? null : t;
  return HEX16.test(t) && t !== ZERO16 ? ZERO16 + t : null;
}

function parseB3Single(value: string, into: IncomingTrace): void {
  const parts = value.trim().split('-');
  if (parts.length === 1) {
    into.sampled = b3Sampled(parts[0] as string);
    return;
  }
  const traceId = b3TraceId(parts[0] as string);
  const spanId = (parts[1] as string).toLowerCase();
  if (traceId === null || !HEX16.test(spanId) || spanId === ZERO16) return;
  into.traceId = traceId;
  into.parentId = spanId;
  into.sampled = parts.length > 2 ? b3Sampled(parts[2] as string) : null;
}

/** Reads the trace context of a request; W3C wins over B3 when both are present (B3 is then rewritten to match). */
export function readTraceHeaders(headers: readonly string[]): IncomingTrace {
  const t: IncomingTrace = { traceId: null, parentId: null, sampled: null, traceState: null, b3: 0, b3Short: false, present: false };
  let traceparent: string | null = null;
  let b3: string | null = null;
  let mTrace: string | null = null;
  let mSpan: string | null = null;
  let mSampled: string | null = null;
  let mFlags: string | null = null;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    // Every trace header starts with t, b or x: one comparison skips most fields.
    const c = name.charCodeAt(0);
    if (c !== 116 && c !== 98 && c !== 120) continue;
    const value = headers[i + 1] as string;
    if (name === 'traceparent') traceparent = value;
    else if (name === 'tracestate') t.traceState = t.traceState === null ? value : `${t.traceState},${value}`;
    else if (name === 'b3') b3 = value;
    else if (name === 'x-b3-traceid') mTrace = value;
    else if (name === 'x-b3-spanid') mSpan = value;
    else if (name === 'x-b3-sampled') mSampled = value;
    else if (name === 'x-b3-flags') mFlags = value;
    else if (name !== 'x-b3-parentspanid') continue;
    t.present = true;
  }
  if (b3 !== null) t.b3 = 1;
  else if (mTrace !== null || mSpan !== null || mSampled !== null || mFlags !== null) t.b3 = 2;
  // B3 goes on with the trace id length it came with, even when traceparent is the context that wins.
  const b3Id = b3 !== null ? b3.trim().split('-', 1)[0]! : (mTrace?.trim() ?? '');
  t.b3Short = b3Id.length === 16;
  if (traceparent !== null && parseTraceparent(traceparent, t)) return t;
  if (b3 !== null) parseB3Single(b3, t);
  else if (t.b3 === 2) {
    const traceId = mTrace === null ? null : b3TraceId(mTrace.trim());
    const spanId = mSpan?.trim().toLowerCase() ?? null;
    if (traceId !== null && spanId !== null && HEX16.test(spanId) && spanId !== ZERO16) {
      t.traceId = traceId;
      t.parentId = spanId;
    }
    t.sampled = mFlags?.trim() === '1' ? true : mSampled === null ? null : b3Sampled(mSampled.trim().toLowerCase());
  }
  // tracestate without a valid traceparent means nothing (W3C section 3.3).
  t.traceState = null;
  return t;
}

// ---- writing ---------------------------------------------------------------------------------------------------

export function formatTraceparent(ctx: SpanContext): string {
  return `00-${ctx.traceId}-${ctx.spanId}-${ctx.sampled ? '01' : '00'}`;
}

/**
 * The request's headers with this hop's context: `traceparent` whose parent is `ctx.spanId` (always), and B3 in the
 * style the request came with. tracestate is left as it arrived. Appends in place when nothing must be removed.
 */
export function writeTraceHeaders(headers: string[], incoming: IncomingTrace, ctx: SpanContext): string[] {
  let out = headers;
  if (incoming.present) {
    out = [];
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i] as string;
      if (!TRACE_HEADERS.has(name)) out.push(name, headers[i + 1] as string);
    }
  }
  out.push('traceparent', formatTraceparent(ctx));
  if (incoming.b3 !== 0) {
    const traceId = incoming.b3Short && ctx.traceId.startsWith(ZERO16) ? ctx.traceId.slice(16) : ctx.traceId;
    const sampled = ctx.sampled ? '1' : '0';
    if (incoming.b3 === 1) out.push('b3', `${traceId}-${ctx.spanId}-${sampled}`);
    else out.push('x-b3-traceid', traceId, 'x-b3-spanid', ctx.spanId, 'x-b3-sampled', sampled);
  }
  return out;
}
