// A 64-bit string hash (FNV-1a over UTF-16 code units, then murmur3's fmix64 finalizer for avalanche) computed in
// 32-bit halves so that hashing a request's key allocates nothing; callers get the top 53 bits as an exact JS number.

// The running 64-bit value as two uint32 halves; module-level scratch keeps the hot path free of objects.
let hi = 0;
let lo = 0;

/** (hi, lo) = (hi, lo) * (bHi, bLo) mod 2^64, with 16-bit limbs for the low 32x32 product so nothing overflows 2^53. */
function mul64(bHi: number, bLo: number): void {
  const a0 = lo & 0xffff;
  const a1 = lo >>> 16;
  const b0 = bLo & 0xffff;
  const b1 = bLo >>> 16;
  const p00 = a0 * b0;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  const newLo = (((mid & 0xffff) << 16) | (p00 & 0xffff)) >>> 0;
  const carry = a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16);
  // The cross terms only reach the high half, where Math.imul's wrap-around is exactly mod 2^32.
  hi = (carry + Math.imul(hi, bLo) + Math.imul(lo, bHi)) >>> 0;
  lo = newLo;
}

/** k ^= k >>> 33 */
function xorShift33(): void {
  lo = (lo ^ (hi >>> 1)) >>> 0;
}

const TWO_POW_21 = 2 ** 21;

/**
 * The 64-bit hash of `key`, reduced to its top 53 bits (0 <= result < 2^53) so it is an exact integer number;
 * ring positions and table slots derive from it. Stable across processes and versions: change it only with a migration note.
 */
export function hash64(key: string): number {
  // FNV-1a 64 offset basis.
  hi = 0xcbf29ce4;
  lo = 0x84222325;
  for (let i = 0; i < key.length; i++) {
    lo = (lo ^ key.charCodeAt(i)) >>> 0;
    mul64(0x00000100, 0x000001b3); // the FNV 64-bit prime
  }
  xorShift33();
  mul64(0xff51afd7, 0xed558ccd);
  xorShift33();
  mul64(0xc4ceb9fe, 0x1a85ec53);
  xorShift33();
  return hi * TWO_POW_21 + (lo >>> 11);
}
