// gRPC on the wire for the demo's catalog: the protobuf encoding of its four messages (catalog.proto) and gRPC's
// length-prefixed message framing. Small on purpose: the demo runs with no gRPC library installed.

export interface Product {
  id: number;
  name: string;
  description: string;
  priceCents: number;
}

const VARINT = 0;
const LENGTH_DELIMITED = 2;

class Writer {
  private readonly parts: Buffer[] = [];

  private varint(n: number): void {
    const bytes: number[] = [];
    let v = n;
    while (v > 0x7f) {
      bytes.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    bytes.push(v);
    this.parts.push(Buffer.from(bytes));
  }

  /** proto3 leaves default values (0, "") out. */
  int(field: number, n: number): this {
    if (n === 0) return this;
    if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`field ${field}: only non-negative integers are encoded here`);
    this.varint((field << 3) | VARINT);
    this.varint(n);
    return this;
  }

  bytes(field: number, b: Buffer): this {
    this.varint((field << 3) | LENGTH_DELIMITED);
    this.varint(b.length);
    this.parts.push(b);
    return this;
  }

  string(field: number, s: string): this {
    return s === '' ? this : this.bytes(field, Buffer.from(s, 'utf8'));
  }

  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** Calls `onField` for each field of a message; fields of wire types this demo does not use are skipped. */
function readFields(b: Buffer, onField: (field: number, value: number | Buffer) => void): void {
  let i = 0;
  const varint = (): number => {
    let n = 0;
    let scale = 1;
    for (let k = 0; k < 10; k++) {
      if (i >= b.length) throw new RangeError('truncated varint');
      const byte = b[i++] as number;
      n += (byte & 0x7f) * scale;
      scale *= 0x80;
      if ((byte & 0x80) === 0) return n;
    }
    throw new RangeError('varint longer than 10 bytes');
  };
  while (i < b.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === VARINT) onField(field, varint());
    else if (wire === LENGTH_DELIMITED) {
      const len = varint();
      if (i + len > b.length) throw new RangeError('truncated field');
      onField(field, b.subarray(i, i + len));
      i += len;
    } else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else throw new RangeError(`unsupported wire type ${wire}`);
  }
}

export function encodeProduct(p: Product): Buffer {
  return new Writer().int(1, p.id).string(2, p.name).string(3, p.description).int(4, p.priceCents).done();
}

export function decodeProduct(b: Buffer): Product {
  const p: Product = { id: 0, name: '', description: '', priceCents: 0 };
  readFields(b, (f, v) => {
    if (f === 1 && typeof v === 'number') p.id = v;
    else if (f === 2 && Buffer.isBuffer(v)) p.name = v.toString('utf8');
    else if (f === 3 && Buffer.isBuffer(v)) p.description = v.toString('utf8');
    else if (f === 4 && typeof v === 'number') p.priceCents = v;
  });
  return p;
}

export function encodeProductList(products: readonly Product[]): Buffer {
  const w = new Writer();
  for (const p of products) w.bytes(1, encodeProduct(p));
  return w.done();
}

export function decodeProductList(b: Buffer): Product[] {
  const out: Product[] = [];
  readFields(b, (f, v) => {
    if (f === 1 && Buffer.isBuffer(v)) out.push(decodeProduct(v));
  });
  return out;
}

export function encodeProductId(id: number): Buffer {
  return new Writer().int(1, id).done();
}

export function decodeProductId(b: Buffer): number {
  let id = 0;
  readFields(b, (f, v) => {
    if (f === 1 && typeof v === 'number') id = v;
  });
  return id;
}

/** One gRPC message on the wire: a flag byte (0: not compressed), a 4-byte big-endian length, the message. */
export function frame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

/** The messages in a gRPC body; compressed messages are refused (the demo asks for none). */
export function unframe(body: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let i = 0;
  while (i < body.length) {
    if (i + 5 > body.length) throw new RangeError('truncated gRPC message header');
    if (body[i] !== 0) throw new RangeError('compressed gRPC messages are not supported');
    const len = body.readUInt32BE(i + 1);
    if (i + 5 + len > body.length) throw new RangeError('truncated gRPC message');
    out.push(body.subarray(i + 5, i + 5 + len));
    i += 5 + len;
  }
  return out;
}
