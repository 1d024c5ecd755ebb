// The two messages of grpc.health.v1.Health/Check, hand-encoded: the request is `string service = 1`, the response
// `ServingStatus status = 1` (UNKNOWN 0, SERVING 1, NOT_SERVING 2, SERVICE_UNKNOWN 3), each in a 5-byte gRPC frame.

export const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';
export const SERVING = 1;
export const SERVING_STATUS_NAMES = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

/** A framed HealthCheckRequest: flag 0 (not compressed), 4-byte big-endian length, then the message. */
export function encodeHealthCheckRequest(service: string): Buffer {
  const name = Buffer.from(service, 'utf8');
  // proto3 leaves a default (empty) string out; otherwise field 1, wire type 2 (length-delimited): tag 0x0a.
  const message = name.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a]), encodeVarint(name.length), name]);
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  return frame;
}

/** The status of the first framed HealthCheckResponse in `body`, or a string saying why it cannot be read. */
export function decodeHealthCheckResponse(body: Buffer): number | string {
  if (body.length < 5) return `response body of ${body.length} bytes holds no gRPC message`;
  if (body[0] !== 0) return 'response message is compressed, which the check did not ask for';
  const length = body.readUInt32BE(1);
  if (body.length < 5 + length) return 'response message is cut short';
  const r = { buf: body, pos: 5, end: 5 + length };
  let status = 0; // an absent field is proto3's default, UNKNOWN
  while (r.pos < r.end) {
    const tag = readVarint(r);
    if (tag < 0) return 'malformed response message';
    const wire = tag & 7;
    if (tag >>> 3 === 1 && wire === 0) {
      status = readVarint(r);
      if (status < 0) return 'malformed response message';
    } else if (!skipField(r, wire)) {
      return 'malformed response message';
    }
  }
  return status;
}

function encodeVarint(n: number): Buffer {
  const bytes: number[] = [];
  let v = n;
  while (v >= 0x80) {
    bytes.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

interface Reader {
  buf: Buffer;
  pos: number;
  end: number;
}

/** Reads a varint of up to 7 bytes (ample for tags, enums and lengths here); -1 when malformed. */
function readVarint(r: Reader): number {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 7 && r.pos < r.end; i++) {
    const b = r.buf[r.pos++] as number;
    value += (b & 0x7f) * scale;
    if (b < 0x80) return value;
    scale *= 128;
  }
  return -1;
}

/** Skips a field the check does not read (later versions of the message may add some). */
function skipField(r: Reader, wire: number): boolean {
  switch (wire) {
    case 0:
      return readVarint(r) >= 0;
    case 1:
      r.pos += 8;
      break;
    case 2: {
      const len = readVarint(r);
      if (len < 0) return false;
      r.pos += len;
      break;
    }
    case 5:
      r.pos += 4;
      break;
    default:
      return false;
  }
  return r.pos <= r.end;
}
