/**
 * A small seeded PRNG for test fixtures and random-initialised models: xoshiro128** seeded
 * through splitmix32, with uniform() and normal() (Box–Muller).
 *
 * Reproducibility: the integer core uses only 32-bit integer operations (Math.imul, shifts),
 * so the u32 stream is identical on every platform and engine. uniform() is exact (53 bits
 * from two u32 draws). normal() uses Math.log/Math.sqrt/Math.cos/Math.sin; V8 implements
 * log/cos/sin with its own fdlibm port (not the platform libm), so Node gives the same
 * values on every OS and CPU; other JS engines may differ in the last bit.
 */

const GOLDEN = 0x9e3779b9;

/** The splitmix32/murmur3 finaliser: a bijective 32-bit mix. */
export function mix32(x: number): number {
  let z = x | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** Splits a seed (a non-negative safe integer) into two u32 halves; throws otherwise. */
function seedHalves(seed: number): [number, number] {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new Error(`seed must be a non-negative safe integer, got ${seed}`);
  }
  return [seed >>> 0, Math.floor(seed / 0x1_0000_0000) >>> 0];
}

/**
 * A u32 seed derived from (seed, name): FNV-1a over the name's UTF-16 code units, mixed with
 * both halves of the seed. Used to give each tensor its own independent stream.
 */
export function hashSeed(seed: number, name: string): number {
  const [lo, hi] = seedHalves(seed);
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  }
  return mix32(h ^ mix32(lo ^ mix32(hi + GOLDEN)));
}

const rotl = (x: number, k: number): number => (x << k) | (x >>> (32 - k));

export class Prng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spare = NaN;

  /** Seeds the four state words by splitmix32 from `seed` (a non-negative safe integer). */
  constructor(seed: number) {
    const [lo, hi] = seedHalves(seed);
    let state = lo ^ mix32(hi);
    const next = (): number => {
      state = (state + GOLDEN) | 0;
      return mix32(state);
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** A generator with the given raw xoshiro128** state (for checking the core against its reference). */
  static fromState(s0: number, s1: number, s2: number, s3: number): Prng {
    const p = new Prng(0);
    p.s0 = s0 | 0;
    p.s1 = s1 | 0;
    p.s2 = s2 | 0;
    p.s3 = s3 | 0;
    return p;
  }

  /** The next u32 of the xoshiro128** stream. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  uniform(): number {
    const a = this.nextU32() >>> 5; // 27 bits
    const b = this.nextU32() >>> 6; // 26 bits
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** Standard normal (Box–Muller; the second value of each pair is kept for the next call). */
  normal(): number {
    if (!Number.isNaN(this.spare)) {
      const z = this.spare;
      this.spare = NaN;
      return z;
    }
    const u1 = 1 - this.uniform(); // (0, 1]
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u2;
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }
}
