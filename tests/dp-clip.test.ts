import { describe, expect, it } from "vitest";
import { clipToNorm, l2Norm, sumClipped } from "../common/dp/clip.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { createRng } from "../common/rng.js";

function randomVector(length: number, seed: number, magnitude: number): Float32Array {
  const rng = createRng(seed);
  const values = new Float32Array(length);
  for (let i = 0; i < length; i++) values[i] = magnitude * rng.normal();
  return values;
}

describe("l2Norm", () => {
  it("matches a hand computation", () => {
    expect(l2Norm(new Float32Array([3, 4]))).toBe(5);
    expect(l2Norm(new Float32Array([]))).toBe(0);
  });

  it("accumulates in float64, so many small squares are not lost", () => {
    // 1e6 values of 1e-3: a float32 accumulator drifts visibly from the exact norm of 1.
    const values = new Float32Array(1_000_000).fill(1e-3);
    expect(l2Norm(values)).toBeCloseTo(Math.fround(1e-3) * 1000, 9);
  });
});

describe("clipToNorm", () => {
  it("bounds the norm by S for many vectors and clip norms", () => {
    for (let seed = 0; seed < 50; seed++) {
      const clipNorm = 0.01 + seed * 0.37;
      const values = randomVector(1000 + seed * 13, seed, 5);
      const before = l2Norm(values);
      const result = clipToNorm(values, clipNorm);
      expect(result.clipped).toBe(true);
      expect(result.norm).toBeCloseTo(before, 10);
      const after = l2Norm(values);
      expect(after).toBeLessThanOrEqual(clipNorm);
      expect(after).toBeGreaterThan(clipNorm * (1 - 1e-5));
      expect(result.scale).toBeCloseTo(clipNorm / before, 5);
    }
  });

  it("keeps the direction of the update", () => {
    const values = new Float32Array([3, -4, 0]);
    const result = clipToNorm(values, 1);
    expect(result.scale).toBeCloseTo(0.2, 6);
    expect(values[0]).toBeCloseTo(0.6, 6);
    expect(values[1]).toBeCloseTo(-0.8, 6);
    expect(values[2]).toBe(0);
  });

  it("leaves vectors already within S untouched", () => {
    const values = randomVector(500, 7, 0.01);
    const copy = values.slice();
    const result = clipToNorm(values, 10);
    expect(result).toEqual({ norm: l2Norm(copy), scale: 1, clipped: false });
    expect(values).toEqual(copy);
    const exact = new Float32Array([3, 4]);
    expect(clipToNorm(exact, 5).clipped).toBe(false);
    expect(Array.from(exact)).toEqual([3, 4]);
  });

  it("refuses a non-positive clip norm, naming it", () => {
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      const attempt = () => clipToNorm(new Float32Array([1]), bad);
      expect(attempt).toThrow(FedsimError);
      expect(attempt).toThrow(/clipNorm/);
    }
  });

  it("refuses non-finite updates instead of producing NaN", () => {
    try {
      clipToNorm(new Float32Array([1, Number.NaN]), 1);
      expect.unreachable();
    } catch (err) {
      expect((err as FedsimError).code).toBe(ErrorCode.NON_FINITE);
    }
  });
});

describe("sumClipped (central DP's server-side clipping)", () => {
  const f32 = (...xs: number[]) => Float32Array.from(xs);

  it("clips each update to S before summing, and counts the ones it had to clip", () => {
    const { sum, clipped } = sumClipped([f32(10, 0), f32(0.3, 0.4), f32(0, 3)], 1, 2);
    // [1, 0] + [0.3, 0.4] (norm 0.5, untouched) + [0, 1]
    expect(sum[0]).toBeCloseTo(1.3, 6);
    expect(sum[1]).toBeCloseTo(1.4, 6);
    expect(clipped).toBe(2);
  });

  it("bounds one client's influence by S however large its update", () => {
    const honest = [randomVector(500, 1, 0.01), randomVector(500, 2, 0.01)];
    const without = sumClipped(
      honest.map((d) => d.slice()),
      0.5,
      500,
    ).sum;
    const hostile = randomVector(500, 3, 1e6);
    const withHostile = sumClipped([...honest.map((d) => d.slice()), hostile], 0.5, 500).sum;
    const shift = withHostile.map((v, i) => v - without[i]);
    expect(l2Norm(shift)).toBeLessThanOrEqual(0.5 * (1 + 1e-6));
  });

  it("refuses an update of the wrong length and a non-finite one", () => {
    expect(() => sumClipped([f32(1, 2, 3)], 1, 2)).toThrow(
      expect.objectContaining({ code: ErrorCode.BAD_SHAPE }),
    );
    expect(() => sumClipped([f32(1, Number.NaN)], 1, 2)).toThrow(
      expect.objectContaining({ code: ErrorCode.NON_FINITE }),
    );
  });
});
