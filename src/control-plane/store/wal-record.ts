// Framing of the file store's records (WAL commits and the snapshot): a self-checking header and a checksummed JSON
// payload, and the scan that tells a torn tail (to drop) from damage before it (to refuse).
import { crc32 } from 'node:zlib';
import { StoreError } from './store.js';

/** "MYWL" read as a little-endian u32: marks the start of every record. */
const MAGIC = 0x4c57594d;
const MAGIC_BYTES = Buffer.from([0x4d, 0x59, 0x57, 0x4c]);
/**
 * Header layout (little-endian u32s): magic, payload length, revision low, revision high, offset of this record in
 * its batch, length of the whole batch, crc32 of the 24 bytes before it, crc32 of the payload.
 * The batch fields let recovery see that damage lies inside the last, never acknowledged, group-commit write.
 */
export const HEADER_BYTES = 32;
const HEADER_CHECKED_BYTES = 24;
const TWO_32 = 2 ** 32;

export interface RecordInput {
  readonly revision: number;
  readonly payload: Buffer;
}

export interface DecodedRecord {
  readonly offset: number;
  readonly end: number;
  readonly revision: number;
  readonly payload: Buffer;
  readonly batchStart: number;
  readonly batchEnd: number;
}

/** Frames the records of one write (one per commit) into a single buffer. */
export function encodeBatch(records: readonly RecordInput[]): Buffer {
  let total = 0;
  for (const r of records) total += HEADER_BYTES + r.payload.length;
  const out = Buffer.allocUnsafe(total);
  let pos = 0;
  for (const r of records) {
    out.writeUInt32LE(MAGIC, pos);
    out.writeUInt32LE(r.payload.length, pos + 4);
    out.writeUInt32LE(r.revision % TWO_32, pos + 8);
    out.writeUInt32LE(Math.floor(r.revision / TWO_32), pos + 12);
    out.writeUInt32LE(pos, pos + 16);
    out.writeUInt32LE(total, pos + 20);
    out.writeUInt32LE(crc32(out.subarray(pos, pos + HEADER_CHECKED_BYTES)), pos + 24);
    out.writeUInt32LE(crc32(r.payload), pos + 28);
    r.payload.copy(out, pos + HEADER_BYTES);
    pos += HEADER_BYTES + r.payload.length;
  }
  return out;
}

/** Reads the record at `pos`, or says why there is no intact one there. */
export function readRecord(buf: Buffer, pos: number): DecodedRecord | string {
  if (buf.length - pos < HEADER_BYTES) return 'incomplete header';
  if (buf.readUInt32LE(pos) !== MAGIC) return 'no record marker';
  if (buf.readUInt32LE(pos + 24) !== crc32(buf.subarray(pos, pos + HEADER_CHECKED_BYTES))) return 'header checksum mismatch';
  const length = buf.readUInt32LE(pos + 4);
  const end = pos + HEADER_BYTES + length;
  if (end > buf.length) return 'incomplete payload';
  const payload = buf.subarray(pos + HEADER_BYTES, end);
  if (buf.readUInt32LE(pos + 28) !== crc32(payload)) return 'payload checksum mismatch';
  const batchStart = pos - buf.readUInt32LE(pos + 16);
  return {
    offset: pos,
    end,
    revision: buf.readUInt32LE(pos + 8) + buf.readUInt32LE(pos + 12) * TWO_32,
    payload,
    batchStart,
    batchEnd: batchStart + buf.readUInt32LE(pos + 20),
  };
}

export interface ScanResult {
  readonly records: DecodedRecord[];
  /** Bytes of intact records from the start; the file should be cut back to this length. */
  readonly validLength: number;
  /** Set when the file ends in a torn record (a write cut short by a crash), which the caller drops. */
  readonly torn?: { readonly offset: number; readonly reason: string };
}

/**
 * Reads every record of a file. A damaged record with nothing intact after it, or only the rest of its own
 * (unacknowledged) batch, is a torn tail; a damaged record followed by intact ones from later writes is corruption.
 */
export function scanRecords(buf: Buffer, file: string): ScanResult {
  const records: DecodedRecord[] = [];
  let pos = 0;
  // End of the last record that completed its batch: an acknowledged write never starts before it.
  let settled = 0;
  while (pos < buf.length) {
    const r = readRecord(buf, pos);
    if (typeof r === 'string') {
      const later = nextIntactRecord(buf, pos + 1);
      const tornBatch = later !== undefined && later.batchStart >= settled && later.batchStart <= pos && later.batchEnd >= buf.length;
      if (later !== undefined && !tornBatch) {
        throw new StoreError(
          'corrupt',
          `${file}: damaged record at byte ${pos} (${r}) with intact records after it (next at byte ${later.offset}); ` +
            'restore the store directory from a backup, or move this file away to start from the last snapshot (losing the commits after it)',
        );
      }
      return { records, validLength: pos, torn: { offset: pos, reason: r } };
    }
    records.push(r);
    pos = r.end;
    if (r.end === r.batchEnd) settled = r.end;
  }
  return { records, validLength: pos };
}

function nextIntactRecord(buf: Buffer, from: number): DecodedRecord | undefined {
  let at = buf.indexOf(MAGIC_BYTES, from);
  // Each step moves past one marker occurrence, so the loop ends within buf.length iterations.
  while (at !== -1) {
    const r = readRecord(buf, at);
    if (typeof r !== 'string') return r;
    at = buf.indexOf(MAGIC_BYTES, at + 1);
  }
  return undefined;
}
