// How stored objects are named in etcd: `<prefix><kind>/<namespace>/<name>`, and the key range that holds them all.

export interface ObjectId {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
}

export class EtcdKeys {
  private readonly prefixBytes: Buffer;
  /** The whole key range of this store: [start, end). */
  readonly start: Buffer;
  readonly end: Buffer;

  constructor(readonly prefix: string) {
    if (prefix.length === 0) throw new TypeError('the etcd key prefix must not be empty');
    this.prefixBytes = Buffer.from(prefix, 'utf8');
    this.start = this.prefixBytes;
    this.end = rangeEnd(this.prefixBytes);
  }

  key(kind: string, namespace: string, name: string): Buffer {
    return Buffer.from(`${this.prefix}${kind}/${namespace}/${name}`, 'utf8');
  }

  /** The object a key names, or undefined for a key under the prefix that is not `<kind>/<namespace>/<name>`. */
  parse(key: Buffer): ObjectId | undefined {
    if (key.length <= this.prefixBytes.length || !key.subarray(0, this.prefixBytes.length).equals(this.prefixBytes)) return undefined;
    const parts = key.subarray(this.prefixBytes.length).toString('utf8').split('/');
    if (parts.length !== 3 || parts.some((p) => p.length === 0)) return undefined;
    return { kind: parts[0] as string, namespace: parts[1] as string, name: parts[2] as string };
  }
}

/** The first key after every key that starts with `prefix` (etcd's range_end for a prefix). */
function rangeEnd(prefix: Buffer): Buffer {
  // UTF-8 never contains the byte 0xff, so incrementing the last byte needs no carry.
  const end = Buffer.from(prefix);
  end[end.length - 1] = (end[end.length - 1] as number) + 1;
  return end;
}
