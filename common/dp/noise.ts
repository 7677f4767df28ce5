/**
 * Gaussian noise for DP. Real runs must draw it from a CSPRNG: noise from a seeded, predictable
 * generator can be subtracted by anyone who knows the seed, which voids the guarantee. Seeded noise
 * exists only so tests and debugging runs are reproducible.
 */
import { randomFillSync } from "node:crypto";
import { createRng } from "../rng.js";
import { requireNonNegative } from "./validate.js";

export interface NormalSource {
  /** One draw from N(0, 1). */
  normal(): number;
}

/** 64 KiB of randomness per refill: one syscall per 8192 uniforms instead of one each. */
const BUFFER_WORDS = 16_384;
const TWO_POW_26 = 67_108_864;
const TWO_POW_53 = 9_007_199_254_740_992;

/** Standard normals from node:crypto's CSPRNG, buffered, via Box-Muller on 53-bit uniforms. */
export function cryptoNormalSource(): NormalSource {
  const words = new Uint32Array(BUFFER_WORDS);
  let position = BUFFER_WORDS;
  let spare: number | null = null;

  const uniform = (): number => {
    if (position + 2 > BUFFER_WORDS) {
      randomFillSync(words);
      position = 0;
    }
    const high = words[position++] >>> 5; // 27 bits
    const low = words[position++] >>> 6; // 26 bits
    return (high * TWO_POW_26 + low) / TWO_POW_53;
  };

  return {
    normal(): number {
      if (spare !== null) {
        const value = spare;
        spare = null;
        return value;
      }
      const u1 = 1 - uniform(); // (0, 1], so the log is finite
      const u2 = uniform();
      const radius = Math.sqrt(-2 * Math.log(u1));
      spare = radius * Math.sin(2 * Math.PI * u2);
      return radius * Math.cos(2 * Math.PI * u2);
    },
  };
}

/** Reproducible standard normals from common/rng.ts. For tests and debugging only: not private. */
export function seededNormalSource(seed: number): NormalSource {
  const rng = createRng(seed);
  return { normal: () => rng.normal() };
}

/** Adds independent N(0, std²) noise to every value, in place. */
export function addGaussianNoise(values: Float32Array, std: number, source: NormalSource): void {
  requireNonNegative("std", std);
  if (std === 0) return;
  for (let i = 0; i < values.length; i++) values[i] += std * source.normal();
}
