import { describe, expect, it } from "vitest";
import {
  addGaussianNoise,
  cryptoNormalSource,
  type NormalSource,
  seededNormalSource,
} from "../common/dp/noise.js";
import { ErrorCode, FedsimError } from "../common/errors.js";

function moments(values: Float32Array): { mean: number; std: number } {
  let sum = 0;
  for (const v of values) sum += v;
  const mean = sum / values.length;
  let squares = 0;
  for (const v of values) squares += (v - mean) ** 2;
  return { mean, std: Math.sqrt(squares / (values.length - 1)) };
}

function noiseOnZeros(std: number, source: NormalSource, n = 200_000): Float32Array {
  const values = new Float32Array(n);
  addGaussianNoise(values, std, source);
  return values;
}

describe("Gaussian noise", () => {
  it("seeded source: std within 2% of the request and mean ≈ 0 over 200k draws", () => {
    const std = 2.5;
    const { mean, std: sampleStd } = moments(noiseOnZeros(std, seededNormalSource(42)));
    expect(Math.abs(sampleStd - std) / std).toBeLessThan(0.02);
    // Standard error of the mean is 2.5/√200000 ≈ 0.0056; 5 of them.
    expect(Math.abs(mean)).toBeLessThan(0.03);
  });

  it("crypto source: std within 2% of the request and mean ≈ 0 over 200k draws", () => {
    const std = 0.7;
    const values = noiseOnZeros(std, cryptoNormalSource());
    const { mean, std: sampleStd } = moments(values);
    expect(Math.abs(sampleStd - std) / std).toBeLessThan(0.02);
    expect(Math.abs(mean)).toBeLessThan(0.01);
    // Roughly 68.3% of a normal lies within one std.
    const within = values.filter((v) => Math.abs(v) <= std).length / values.length;
    expect(within).toBeGreaterThan(0.676);
    expect(within).toBeLessThan(0.69);
  });

  it("seeded noise is reproducible, crypto noise is not", () => {
    expect(noiseOnZeros(1, seededNormalSource(9), 100)).toEqual(noiseOnZeros(1, seededNormalSource(9), 100));
    expect(noiseOnZeros(1, seededNormalSource(9), 100)).not.toEqual(
      noiseOnZeros(1, seededNormalSource(10), 100),
    );
    expect(noiseOnZeros(1, cryptoNormalSource(), 100)).not.toEqual(
      noiseOnZeros(1, cryptoNormalSource(), 100),
    );
  });

  it("adds noise in place on top of the values", () => {
    const values = new Float32Array(100_000).fill(10);
    addGaussianNoise(values, 1, seededNormalSource(3));
    const { mean, std } = moments(values);
    expect(mean).toBeCloseTo(10, 1);
    expect(std).toBeCloseTo(1, 1);
  });

  it("std 0 leaves values unchanged; a negative std is refused by name", () => {
    const values = new Float32Array([1, 2, 3]);
    addGaussianNoise(values, 0, seededNormalSource(1));
    expect(Array.from(values)).toEqual([1, 2, 3]);
    try {
      addGaussianNoise(values, -1, seededNormalSource(1));
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(FedsimError);
      expect((err as FedsimError).code).toBe(ErrorCode.INVALID_CONFIG);
      expect((err as FedsimError).message).toMatch(/std/);
    }
  });
});
