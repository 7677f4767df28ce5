import { expect } from "vitest";
import { createRng } from "../../common/rng.js";

/** Seeded N(0, 1) values, or values in [0.1, 2.1) for ops that need positive inputs. */
export function randomValues(size: number, seed: number, positive = false): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: size }, () => (positive ? 0.1 + rng.next() * 2 : rng.normal()));
}

export const sizeOf = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

/**
 * max |actual − expected| / max |expected|: elementwise ratios blow up on entries near zero. An
 * all-zero reference fails the test unless `allowZeroReference`, which then gives the absolute error.
 */
export function relativeError(
  actual: Float32Array,
  expected: Float32Array,
  options: { allowZeroReference?: boolean } = {},
): number {
  expect(actual.length).toBe(expected.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  if (!options.allowZeroReference) expect(scale).toBeGreaterThan(0);
  return scale === 0 ? diff : diff / scale;
}
