import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  addMod,
  chooseEncoding,
  chooseScale,
  dequantizeSum,
  encodeWeightedVector,
  quantize,
  subMod,
  valueRange,
} from "../common/crypto/secagg/index.js";
import { ErrorCode } from "../common/errors.js";
import { randomVector } from "./secagg-helpers.js";

describe("quantize / dequantizeSum", () => {
  it("round-trips within 1/scale, clamping to the clip range", () => {
    fc.assert(
      fc.property(
        fc.array(fc.float({ min: -10, max: 10, noNaN: true }), { minLength: 1, maxLength: 200 }),
        fc.constantFrom(0.5, 1, 3, 8),
        fc.integer({ min: 1, max: 1000 }),
        (raw, clipRange, maxClients) => {
          const values = Float32Array.from(raw);
          const scale = chooseScale(clipRange, maxClients);
          const back = dequantizeSum(quantize(values, { clipRange, scale }), scale);
          for (let i = 0; i < values.length; i++) {
            const clamped = Math.min(clipRange, Math.max(-clipRange, values[i]));
            expect(Math.abs(back[i] - clamped)).toBeLessThanOrEqual(1 / scale);
          }
        },
      ),
    );
  });

  it("rounds exactly as Math.round (halves toward +∞), clamps the integer, for any scale", () => {
    // The reference is the textbook definition; quantize computes it without Math.round.
    const reference = (values: Float32Array, clipRange: number, scale: number) => {
      const maxQ = Math.floor(clipRange * scale);
      return Uint32Array.from(values, (v) => Math.min(maxQ, Math.max(-maxQ, Math.round(v * scale))));
    };
    // x = 0.49999999999999994 is the one double where floor(x + 0.5) ≠ Math.round(x).
    const edges = Float32Array.from([1, -1, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0, -0, 3, -3, 1e-30, -1e-30]);
    for (const scale of [0.49999999999999994, 1, 2, 3, 2 ** 24, 1 / 3]) {
      expect(Array.from(quantize(edges, { clipRange: 10, scale }))).toEqual(
        Array.from(reference(edges, 10, scale)),
      );
    }
    fc.assert(
      fc.property(
        fc.array(fc.float({ noNaN: true, noDefaultInfinity: true }), { minLength: 1, maxLength: 300 }),
        fc.double({ min: 1e-3, max: 1e6, noNaN: true }),
        fc.double({ min: 1e-3, max: 1e3, noNaN: true }),
        (raw, scale, clipRange) => {
          fc.pre(clipRange * scale < 2 ** 31);
          const values = Float32Array.from(raw);
          expect(Array.from(quantize(values, { clipRange, scale }))).toEqual(
            Array.from(reference(values, clipRange, scale)),
          );
        },
      ),
    );
  });

  it("stores negatives as two's complement", () => {
    const q = quantize(Float32Array.from([-1, 0, 1, -0.5]), { clipRange: 2, scale: 4 });
    expect(Array.from(q)).toEqual([2 ** 32 - 4, 0, 4, 2 ** 32 - 2]);
  });

  it("refuses NaN and infinities instead of clipping them", () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      expect(() => quantize(Float32Array.from([0, bad, 1, bad]), { clipRange: 1, scale: 1024 })).toThrow(
        expect.objectContaining({
          code: ErrorCode.NON_FINITE,
          message: `quantize: value at index 1 is ${bad}`,
        }),
      );
    }
  });

  it("rejects invalid parameters, naming them", () => {
    expect(() => quantize(new Float32Array(1), { clipRange: 0, scale: 1 })).toThrow(/clipRange/);
    expect(() => quantize(new Float32Array(1), { clipRange: 1, scale: -1 })).toThrow(/scale/);
    expect(() => quantize(new Float32Array(1), { clipRange: 1, scale: 2 ** 31 })).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_CONFIG }),
    );
    expect(() => chooseScale(1, 0)).toThrow(/maxClients/);
    expect(() => chooseScale(Number.NaN, 3)).toThrow(/clipRange/);
  });
});

describe("chooseScale", () => {
  it("is the largest power of two with maxClients·clipRange·scale < 2^31", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 1e-3, max: 1e4, noNaN: true }),
        fc.integer({ min: 1, max: 100_000 }),
        (clipRange, maxClients) => {
          const scale = chooseScale(clipRange, maxClients);
          expect(Number.isInteger(Math.log2(scale))).toBe(true);
          expect(maxClients * clipRange * scale).toBeLessThan(2 ** 31);
          expect(maxClients * clipRange * scale * 2).toBeGreaterThanOrEqual(2 ** 31);
        },
      ),
    );
    expect(chooseScale(1, 1)).toBe(2 ** 30);
    expect(chooseScale(1, 100)).toBe(2 ** 24);
  });

  it("never wraps when maxClients all send ±clipRange", () => {
    for (const [clipRange, maxClients] of [
      [1, 1],
      [1, 100],
      [3.7, 17],
      [0.01, 5000],
      [1000, 3],
    ]) {
      const scale = chooseScale(clipRange, maxClients);
      const q = quantize(Float32Array.from([clipRange, -clipRange, clipRange * 5, -clipRange * 5]), {
        clipRange,
        scale,
      });
      const sum = new Uint32Array(q.length);
      for (let c = 0; c < maxClients; c++) addMod(sum, q);
      const total = dequantizeSum(sum, scale);
      const expected = maxClients * clipRange;
      const tolerance = maxClients / scale + expected * 2 ** -23;
      expect(Math.abs(total[0] - expected)).toBeLessThanOrEqual(tolerance);
      expect(Math.abs(total[1] + expected)).toBeLessThanOrEqual(tolerance);
      expect(total[2]).toBe(total[0]);
      expect(total[3]).toBe(total[1]);
    }
  });

  it("one more client at full range would wrap with twice the scale", () => {
    const scale = chooseScale(1, 64);
    const q = quantize(Float32Array.from([1]), { clipRange: 1, scale: scale * 2 });
    const sum = new Uint32Array(1);
    for (let c = 0; c < 64; c++) addMod(sum, q);
    expect(sum[0] | 0).toBeLessThan(0); // wrapped: why chooseScale stops where it does
  });
});

describe("addMod / subMod", () => {
  it("wrap modulo 2^32 and undo each other", () => {
    const a = Uint32Array.from([0xffff_ffff, 5, 0]);
    const b = Uint32Array.from([2, 0xffff_fffe, 0]);
    const copy = a.slice();
    addMod(a, b);
    expect(Array.from(a)).toEqual([1, 3, 0]);
    subMod(a, b);
    expect(a).toEqual(copy);
  });

  it("agree with word-by-word arithmetic across window boundaries and on views", () => {
    for (const length of [1, 3, 16_384, 16_387, 40_001]) {
      const a = randomVector(length, length);
      const b = randomVector(length, length + 1);
      const sum = a.slice();
      addMod(sum, b);
      const diff = a.slice();
      subMod(diff, b);
      for (let i = 0; i < length; i++) {
        expect(sum[i]).toBe((a[i] + b[i]) >>> 0);
        expect(diff[i]).toBe((a[i] - b[i]) >>> 0);
      }
    }
    const backing = new Uint32Array(10).fill(7);
    addMod(backing.subarray(2, 5), Uint32Array.from([1, 2, 3]));
    expect(Array.from(backing)).toEqual([7, 7, 8, 9, 10, 7, 7, 7, 7, 7]);
  });

  it("refuse vectors of different lengths", () => {
    expect(() => addMod(new Uint32Array(3), new Uint32Array(4))).toThrow(
      expect.objectContaining({ code: ErrorCode.BAD_SHAPE }),
    );
    expect(() => subMod(new Uint32Array(3), new Uint32Array(2))).toThrow(
      expect.objectContaining({ code: ErrorCode.BAD_SHAPE }),
    );
  });
});

describe("chooseEncoding: the fixed-point range is the one the weights have", () => {
  const clients = 10;
  const deltas = Array.from({ length: clients }, (_, k) =>
    Float32Array.from({ length: 64 }, (_, i) => Math.sin(k * 64 + i) * 0.9),
  );

  function sumOf(encoding: ReturnType<typeof chooseEncoding>, numExamples: number): Float32Array {
    const sum = new Uint32Array(65);
    for (const d of deltas) addMod(sum, encodeWeightedVector(d, numExamples, encoding));
    return dequantizeSum(sum, encoding.scale);
  }

  it("unweighted (DP): weight range 1, so the scale is maxWeight times finer than the weighted one", () => {
    const weighted = chooseEncoding({ clipRange: 1, weighted: true, maxWeight: 600 }, clients);
    const unweighted = chooseEncoding({ clipRange: 1, weighted: false, maxWeight: 600 }, clients);
    expect(unweighted.maxWeight).toBe(1);
    expect(unweighted.scale).toBe(chooseScale(1, clients));
    expect(unweighted.scale / weighted.scale).toBeGreaterThanOrEqual(512);
  });

  it("the unweighted sum decodes to Σ clamp(Δ) within n/(2·scale), and its weight coordinate to n", () => {
    const encoding = chooseEncoding({ clipRange: 1, weighted: false, maxWeight: 600 }, clients);
    const decoded = sumOf(encoding, 600);
    const bound = clients / (2 * encoding.scale);
    for (let i = 0; i < 64; i++) {
      const exact = deltas.reduce((s, d) => s + d[i], 0);
      expect(Math.abs(decoded[i] - exact)).toBeLessThanOrEqual(bound + 1e-6);
    }
    expect(decoded[64]).toBe(clients);
    // The old range (clipRange·largest partition) allowed an error at least 512 times larger.
    expect(bound).toBeLessThan(1e-7);
  });

  it("a clipRange below 1 still leaves room for the weight coordinate", () => {
    const encoding = chooseEncoding({ clipRange: 0.25, weighted: true, maxWeight: 600 }, clients);
    expect(valueRange(encoding)).toBe(600);
    // Every client weighs 600: the weights must sum exactly, not clamped at 0.25·600.
    expect(sumOf(encoding, 600)[64]).toBe(6000);
  });

  it("refuses a maxWeight below 1", () => {
    expect(() => chooseEncoding({ clipRange: 1, weighted: true, maxWeight: 0.5 }, 3)).toThrow(/maxWeight/);
  });
});
