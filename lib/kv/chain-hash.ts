/**
 * Chain keys of full token blocks for prefix caching (docs/kv.md, "Prefix caching").
 *
 * A block's K/V depend on every token up to its end (attention is causal, and stacked layers
 * widen even a sliding layer's reach), so logical block b is keyed by a hash chain:
 * key_b = H(key_{b-1}, tokens of block b), with key_{-1} = root(seed, salt). The same key
 * names block b in every cache class. Keys are 64 bits held as two int32 lanes (hi, lo) so
 * that hashing allocates nothing; the hash is fast and non-cryptographic, which is why the
 * pool also verifies a candidate block's tokens and parent key before sharing it.
 */

/** A chain key as two int32 lanes; used as an out-parameter so hashing allocates nothing. */
export interface ChainKey {
  hi: number;
  lo: number;
}

/** murmur3's finaliser: a bijection on 32 bits with full avalanche. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** key_{-1}: the root of every chain of a pool with this seed, for sequences with this salt. */
export function rootKey(seed: number, salt: number, out: ChainKey): void {
  const a = fmix32((seed ^ 0x3c6ef372) | 0);
  out.hi = fmix32((a + Math.imul(salt | 0, 0x9e3779b1)) | 0);
  out.lo = fmix32((out.hi ^ Math.imul(a, 0x27d4eb2f) ^ 0x165667b1) | 0);
}

/**
 * The key of the block holding tokens[from .. from+count) whose parent key is (parentHi,
 * parentLo). Two lanes run over the tokens: lane a is murmur3's body, lane b a different
 * multiply-rotate that also absorbs lane a, so a collision needs both 32-bit lanes to agree.
 */
export function blockKey(
  parentHi: number,
  parentLo: number,
  tokens: ArrayLike<number>,
  from: number,
  count: number,
  out: ChainKey,
): void {
  let a = fmix32(parentLo ^ Math.imul(parentHi, 0x9e3779b1));
  let b = fmix32((parentHi + 0x632be5ab) ^ a);
  for (let i = 0; i < count; i++) {
    const t = tokens[from + i] | 0;
    let k = Math.imul(t, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    a ^= Math.imul(k, 0x1b873593);
    a = (a << 13) | (a >>> 19);
    a = (Math.imul(a, 5) + 0xe6546b64) | 0;
    b = Math.imul(b ^ t ^ 0x5bd1e995, 0x2c1b3c6d);
    b = ((b << 17) | (b >>> 15)) + a;
    b = (Math.imul(b, 9) + 0x7f4a7c15) | 0;
  }
  a = fmix32(a ^ count);
  b = fmix32(b ^ Math.imul(count, 0x61c88647));
  out.lo = fmix32((a + b) | 0);
  out.hi = fmix32((b ^ out.lo ^ 0x7fffffff) | 0);
}

/**
 * The Map key of a chain key: 53 of its 64 bits, exact in a double. Two keys that agree on
 * these bits but differ elsewhere are told apart by the pool's verification (a miss).
 */
export function mapKey(hi: number, lo: number): number {
  return (hi >>> 0) * 0x200000 + (lo >>> 11);
}
