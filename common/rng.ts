import { randomInt } from "node:crypto";
import { ErrorCode, FedsimError } from "./errors.js";

/**
 * Seeded randomness for everything that must be reproducible (partitions, sampling, simulated
 * dropouts, DP noise in tests). Not for cryptography: keys, nonces and SecAgg masks use
 * tweetnacl's / node:crypto's CSPRNG, and so does client sampling under DP (`cryptoRng`).
 */
export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** Standard normal N(0, 1). */
  normal(): number;
  /** Internal state, so a checkpoint can resume the same stream. */
  state(): number[];
}

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** xoshiro128** seeded through splitmix32; 2^128 period, fast, good enough statistically. */
export function createRng(seed: number | number[]): Rng {
  const s = new Uint32Array(4);
  if (Array.isArray(seed)) {
    for (let i = 0; i < 4; i++) s[i] = (seed[i] ?? 0) >>> 0;
  } else {
    const sm = splitmix32(seed);
    for (let i = 0; i < 4; i++) s[i] = sm();
  }
  if ((s[0] | s[1] | s[2] | s[3]) === 0) s[0] = 1;
  let spareNormal: number | null = null;

  const nextU32 = (): number => {
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  };

  const next = (): number => {
    // 53 random bits for a full-precision double.
    const hi = nextU32() >>> 5;
    const lo = nextU32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  };

  return {
    next,
    int(n: number): number {
      return Math.floor(next() * n);
    },
    normal(): number {
      if (spareNormal !== null) {
        const v = spareNormal;
        spareNormal = null;
        return v;
      }
      // Box-Muller; u1 in (0, 1] so log never sees 0.
      const u1 = 1 - next();
      const u2 = next();
      const r = Math.sqrt(-2 * Math.log(u1));
      spareNormal = r * Math.sin(2 * Math.PI * u2);
      return r * Math.cos(2 * Math.PI * u2);
    },
    state(): number[] {
      return Array.from(s);
    },
  };
}

/**
 * The Rng interface over node:crypto's CSPRNG, for draws nobody may predict: DP's accountant
 * assumes the round's sample is secret, and a seeded one can be recomputed from the scenario
 * file or a checkpoint. It has no state to save, so a resumed run draws afresh.
 */
export function cryptoRng(): Rng {
  // 53 random bits as two draws below 2^26 and 2^27: randomInt is unbiased and takes ranges < 2^48.
  const next = (): number => (randomInt(2 ** 27) * 2 ** 26 + randomInt(2 ** 26)) / 2 ** 53;
  return {
    next,
    int(n: number): number {
      return n <= 1 ? 0 : n <= 2 ** 48 - 1 ? randomInt(n) : Math.floor(next() * n);
    },
    normal(): number {
      const u1 = 1 - next();
      const u2 = next();
      return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    },
    state(): number[] {
      throw new FedsimError(
        ErrorCode.INTERNAL,
        "a CSPRNG has no state to save: its draws are not reproducible",
      );
    },
  };
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Fisher-Yates shuffle in place. */
export function shuffleInPlace<T>(items: T[] | Int32Array | Uint32Array, rng: Rng): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const tmp = items[i];
    items[i] = items[j];
    items[j] = tmp;
  }
}

/** k distinct indices from [0, n), in random order. */
export function sampleWithoutReplacement(n: number, k: number, rng: Rng): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  shuffleInPlace(idx, rng);
  return idx.slice(0, Math.min(k, n));
}

/** Derives an independent child seed, so that e.g. each client gets its own stream. */
export function deriveSeed(seed: number, ...labels: (number | string)[]): number {
  let h = seed >>> 0 || 0x811c9dc5;
  for (const label of labels) {
    const text = String(label);
    for (let i = 0; i < text.length; i++) {
      h ^= text.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    h = splitmix32(h)();
  }
  return h >>> 0;
}
