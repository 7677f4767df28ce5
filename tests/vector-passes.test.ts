/**
 * The native vector passes (native/src/vector.cc) against their JavaScript fallbacks, bit for bit.
 *
 * The comparisons run only when the addon is built (describe.runIf). They cannot pass vacuously in CI: "the
 * native passes are available" fails when CI (or FEDSIM_REQUIRE_NATIVE=1) is set and the addon or its
 * vector passes are missing. The fallback tests run everywhere.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { ErrorCode } from "../common/errors.js";
import { loadAddon, type NativeAddon } from "../common/native/addon.js";
import { createRng, type Rng } from "../common/rng.js";
import { weightedMean } from "../common/strategy/aggregate.js";
import {
  addScaledInPlace,
  chooseVectorPasses,
  firstNonFiniteIndex,
  jsVectorPasses,
  subtractInto,
  type VectorPasses,
  vectorPassesImplementation,
  weightedMeanInto,
} from "../common/vector-passes.js";
import { firstNonFinite } from "../common/weights.js";
import { expectError } from "./helpers/expect-error.js";
import { expectNativeWhenRequired } from "./helpers/native-required.js";

const load = loadAddon();
const choice = chooseVectorPasses(load);
const hasNative = choice.implementation === "native";

/** Around the first block boundaries, and one update of the benchmark's CNN (1,663,370) and then some. */
const LENGTHS = [0, 1, 7, 4095, 4096, 4097, 8191, 8192, 8193, 1_700_003];
const COUNTS = [1, 2, 5, 10];
const SCALES = [1e-38, 1e-6, 1, 1e6, 3e38];
const SPECIALS = [
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  -0,
  1e-45,
  -1e-40,
  3.4028234663852886e38,
];

/** Values of many magnitudes (rounding, overflow to ±Inf, subnormals), with a few specials when asked. */
function randomVector(rng: Rng, n: number, specials = true): Float32Array {
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = (rng.next() * 2 - 1) * SCALES[rng.int(SCALES.length)];
  if (specials && n > 0) {
    const count = 1 + rng.int(4);
    for (let j = 0; j < count; j++) v[rng.int(n)] = SPECIALS[rng.int(SPECIALS.length)];
  }
  return v;
}

/** Factors as weightedMean passes them: raw weights (one of them 0 sometimes) divided by their total. */
function randomFactors(rng: Rng, count: number): Float64Array {
  const raw = Array.from({ length: count }, () => (rng.int(5) === 0 ? 0 : rng.next() * 600));
  raw[0] += 1;
  const total = raw.reduce((a, b) => a + b, 0);
  return Float64Array.from(raw, (w) => w / total);
}

/**
 * First index where the bits differ, or -1. Any NaN equals any NaN: ECMAScript leaves the bit pattern of a
 * NaN stored into a Float32Array to the engine, so payloads are not part of the contract.
 */
function firstBitDifference(actual: Float32Array, expected: Float32Array): number {
  expect(actual.length).toBe(expected.length);
  const a = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const b = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i] && !(Number.isNaN(actual[i]) && Number.isNaN(expected[i]))) return i;
  }
  return -1;
}

function expectSameBits(actual: Float32Array, expected: Float32Array): void {
  const at = firstBitDifference(actual, expected);
  expect(at, at < 0 ? "" : `index ${at}: ${actual[at]} vs ${expected[at]}`).toBe(-1);
}

/** Runs one in-place pass with each implementation on copies of `out` and returns both results. */
function inPlaceBoth(
  out: Float32Array,
  run: (passes: VectorPasses, target: Float32Array) => void,
  passes: VectorPasses,
): [Float32Array, Float32Array] {
  const viaPasses = out.slice();
  const viaJs = out.slice();
  run(passes, viaPasses);
  run(jsVectorPasses, viaJs);
  return [viaPasses, viaJs];
}

it("the native vector passes are available when CI or FEDSIM_REQUIRE_NATIVE=1 is set", () => {
  expectNativeWhenRequired(hasNative, choice.reason);
  expect(vectorPassesImplementation()).toEqual({
    implementation: choice.implementation,
    reason: choice.reason,
  });
});

describe.runIf(hasNative)("native vector passes match the JavaScript loops bit for bit", () => {
  const native = choice.passes;

  for (const n of LENGTHS) {
    for (const count of COUNTS) {
      it(`weightedMean of ${count} × ${n}`, () => {
        const rng = createRng(n * 31 + count);
        const vectors = Array.from({ length: count }, () => randomVector(rng, n));
        const factors = randomFactors(rng, count);
        const [fromNative, fromJs] = [new Float32Array(n), new Float32Array(n)];
        native.weightedMeanInto(vectors, factors, fromNative);
        jsVectorPasses.weightedMeanInto(vectors, factors, fromJs);
        expectSameBits(fromNative, fromJs);
      });
    }

    it(`subtractInto and addScaledInPlace on ${n}`, () => {
      const rng = createRng(n + 7);
      const out = randomVector(rng, n);
      const x = randomVector(rng, n);
      expectSameBits(...inPlaceBoth(out, (passes, target) => passes.subtractInto(target, x, target), native));
      const [apart, apartJs] = [new Float32Array(n), new Float32Array(n)];
      native.subtractInto(out, x, apart);
      jsVectorPasses.subtractInto(out, x, apartJs);
      expectSameBits(apart, apartJs);
      for (const scale of [1, -0.37, 1e-3 / 3, 7e30]) {
        expectSameBits(
          ...inPlaceBoth(out, (passes, target) => passes.addScaledInPlace(target, x, scale), native),
        );
      }
    });

    it(`firstNonFinite on ${n}`, () => {
      const rng = createRng(n + 11);
      const values = randomVector(rng, n, false);
      const indexes = () => [native.firstNonFiniteIndex(values), jsVectorPasses.firstNonFiniteIndex(values)];
      expect(indexes()).toEqual([-1, -1]);
      if (n === 0) return;
      // Finite extremes are not flagged.
      for (const special of [-0, 1e-45, -3.4028234663852886e38]) values[rng.int(n)] = special;
      expect(indexes()).toEqual([-1, -1]);
      // A late hit (in the second half, another thread's share of a large array), then earlier ones.
      const late = n - 1 - rng.int(Math.ceil(n / 2));
      values[late] = Number.NEGATIVE_INFINITY;
      expect(indexes()).toEqual([late, late]);
      for (let hit = 0; hit < 4; hit++) {
        values[rng.int(n)] = hit % 2 === 0 ? Number.NaN : Number.POSITIVE_INFINITY;
        const [fromNative, fromJs] = indexes();
        expect(fromNative).toBe(fromJs);
        expect(Number.isFinite(values[fromNative])).toBe(false);
      }
      values[0] = Number.NaN;
      expect(indexes()).toEqual([0, 0]);
    });
  }

  // Terms that nearly cancel leave a result whose float32 rounding depends on the products' own rounding:
  // a fused multiply-add (one rounding) would change about one element in a hundred here.
  it("nearly cancelling terms round as in JavaScript (no fused multiply-add)", () => {
    const rng = createRng(29);
    const x = randomVector(rng, 100_000, false);
    const negated = Float32Array.from(x, (v) => (-v * 3) / 7);
    const [fromNative, fromJs] = [new Float32Array(x.length), new Float32Array(x.length)];
    native.weightedMeanInto([x, negated], Float64Array.of(3 / 10, 7 / 10), fromNative);
    jsVectorPasses.weightedMeanInto([x, negated], Float64Array.of(3 / 10, 7 / 10), fromJs);
    expectSameBits(fromNative, fromJs);
    expect(fromJs.some((v) => v !== 0)).toBe(true);
    const out = Float32Array.from(x, (v) => -v * 0.3);
    expectSameBits(...inPlaceBoth(out, (passes, target) => passes.addScaledInPlace(target, x, 0.3), native));
  });

  it("weightedMean into one of its own inputs", () => {
    const rng = createRng(5);
    const n = 10_000;
    const vectors = [randomVector(rng, n), randomVector(rng, n), randomVector(rng, n)];
    const factors = randomFactors(rng, 3);
    const expected = new Float32Array(n);
    jsVectorPasses.weightedMeanInto(vectors, factors, expected);
    native.weightedMeanInto(vectors, factors, vectors[1]);
    expectSameBits(vectors[1], expected);
  });

  // Above this many elements the native passes split the work across OpenMP threads (vector.cc).
  const PARALLEL_LENGTH = 8_400_000;

  // Overlapping views of one buffer make each element depend on the previous one: a parallel split would
  // see stale neighbours at its chunk boundaries, so the native loops must run in order here.
  for (const n of [5000, PARALLEL_LENGTH]) {
    it(`in-place passes on overlapping views (${n})`, () => {
      const rng = createRng(n + 3);
      const buffer = randomVector(rng, n + 1, false);
      const [viaNative, viaJs] = [new Float32Array(n + 1), new Float32Array(n + 1)];
      const views = (array: Float32Array, outAt: number, xAt: number) =>
        [array.subarray(outAt, outAt + n), array.subarray(xAt, xAt + n)] as const;
      for (const [outAt, xAt] of [
        [0, 1],
        [1, 0],
      ]) {
        viaNative.set(buffer);
        viaJs.set(buffer);
        native.addScaledInPlace(...views(viaNative, outAt, xAt), 0.5);
        jsVectorPasses.addScaledInPlace(...views(viaJs, outAt, xAt), 0.5);
        expectSameBits(viaNative, viaJs);
      }
      viaNative.set(buffer);
      viaJs.set(buffer);
      native.weightedMeanInto([viaNative.subarray(0, n)], Float64Array.of(0.5), viaNative.subarray(1));
      jsVectorPasses.weightedMeanInto([viaJs.subarray(0, n)], Float64Array.of(0.5), viaJs.subarray(1));
      expectSameBits(viaNative, viaJs);
    });
  }

  it(`firstNonFinite split across threads (${PARALLEL_LENGTH})`, () => {
    const values = new Float32Array(PARALLEL_LENGTH).fill(1.5);
    const index = () => native.firstNonFiniteIndex(values);
    expect(index()).toBe(-1);
    // Hits in the last thread's share first, then earlier ones: the earliest must win.
    for (const at of [PARALLEL_LENGTH - 1, PARALLEL_LENGTH - 5000, PARALLEL_LENGTH / 2 + 1, 4097, 4096, 3]) {
      values[at] = at % 2 === 0 ? Number.NaN : Number.NEGATIVE_INFINITY;
      expect(index()).toBe(at);
      expect(jsVectorPasses.firstNonFiniteIndex(values)).toBe(at);
    }
  });

  it("the public functions run natively on large inputs and give the JavaScript answers", () => {
    expect(vectorPassesImplementation().implementation).toBe("native");
    const rng = createRng(17);
    const n = 300_000;
    const vectors = [randomVector(rng, n), randomVector(rng, n)];
    const weights = [3, 5];
    const expected = new Float32Array(n);
    jsVectorPasses.weightedMeanInto(
      vectors,
      Float64Array.from(weights, (w) => w / 8),
      expected,
    );
    expectSameBits(weightedMean(vectors, weights), expected);
    expect(firstNonFinite(vectors[0])).toBe(jsVectorPasses.firstNonFiniteIndex(vectors[0]));
    const [viaPublic, viaJs] = [vectors[0].slice(), vectors[0].slice()];
    addScaledInPlace(viaPublic, vectors[1], 1);
    jsVectorPasses.addScaledInPlace(viaJs, vectors[1], 1);
    expectSameBits(viaPublic, viaJs);
    const [delta, deltaJs] = [new Float32Array(vectors[0].length), new Float32Array(vectors[0].length)];
    subtractInto(vectors[0], vectors[1], delta);
    jsVectorPasses.subtractInto(vectors[0], vectors[1], deltaJs);
    expectSameBits(delta, deltaJs);
  });

  it("the addon rejects bad arguments with a JavaScript error", () => {
    const addon = load.addon as Required<NativeAddon>;
    const four = () => new Float32Array(4);
    expect(() => addon.weightedMean([four(), four()], new Float64Array(1), four())).toThrow(
      "weightedMean: weights has 1 entries for 2 vectors",
    );
    expect(() => addon.weightedMean([four(), new Float32Array(3)], new Float64Array(2), four())).toThrow(
      "weightedMean: vectors[1] has length 3, out has 4",
    );
    expect(() => addon.weightedMean([], new Float64Array(0), four())).toThrow(
      "weightedMean: vectors is empty",
    );
    expect(() => addon.weightedMean([four()], new Float32Array(1) as never, four())).toThrow(
      "weights must be a Float64Array",
    );
    expect(() => addon.weightedMean([new Float64Array(4) as never], new Float64Array(1), four())).toThrow(
      "vectors[0] must be a Float32Array",
    );
    expect(() => addon.subtract(four(), new Float32Array(5), four())).toThrow(
      "subtract: a has length 4, b 5, out 4",
    );
    const shared = new Float32Array(5);
    expect(() => addon.subtract(shared.subarray(1), four(), shared.subarray(0, 4))).toThrow(
      "subtract: out partly overlaps an input",
    );
    expect(() => addon.addScaledInPlace(four(), four(), "2" as never)).toThrow("argument 2 must be a number");
    expect(() => addon.firstNonFinite(new Float64Array(3) as never)).toThrow(
      "firstNonFinite: argument 0 must be a Float32Array",
    );
  });
});

describe("the JavaScript fallback", () => {
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.resetModules();
  });

  it("runs without an addon, or with one built before the vector passes", () => {
    const missing = chooseVectorPasses({ addon: undefined, path: "/nowhere.node", reason: "not built" });
    expect(missing).toEqual({ implementation: "js", reason: "not built", passes: jsVectorPasses });
    const older = chooseVectorPasses({ addon: {} as NativeAddon, path: "/old.node" });
    expect(older.implementation).toBe("js");
    expect(older.passes).toBe(jsVectorPasses);
    expect(older.reason).toContain("npm run build:native");
  });

  it("is chosen under FEDSIM_DISABLE_NATIVE=1 and gives the same answers", async () => {
    vi.stubEnv("FEDSIM_DISABLE_NATIVE", "1");
    expect(chooseVectorPasses(loadAddon()).implementation).toBe("js");
    vi.resetModules();
    const fresh = await import("../common/vector-passes.js");
    const freshAggregate = await import("../common/strategy/aggregate.js");
    expect(fresh.vectorPassesImplementation()).toEqual({
      implementation: "js",
      reason: "disabled by FEDSIM_DISABLE_NATIVE=1",
    });
    const rng = createRng(23);
    const n = 1_100_000;
    const vectors = [randomVector(rng, n), randomVector(rng, n), randomVector(rng, n)];
    const weights = [1, 2, 4];
    expectSameBits(freshAggregate.weightedMean(vectors, weights), weightedMean(vectors, weights));
    expect(fresh.firstNonFiniteIndex(vectors[2])).toBe(firstNonFiniteIndex(vectors[2]));
    const [a, b] = [vectors[0].slice(), vectors[0].slice()];
    fresh.subtractInto(a, vectors[1], a);
    subtractInto(b, vectors[1], b);
    expectSameBits(a, b);
    fresh.addScaledInPlace(a, vectors[2], -0.25);
    addScaledInPlace(b, vectors[2], -0.25);
    expectSameBits(a, b);
  });

  it("refuses vectors of different lengths before either implementation runs", () => {
    const big = new Float32Array(5000);
    expectError(() => subtractInto(big, new Float32Array(4999), big), ErrorCode.BAD_SHAPE, "4999 ≠ 5000");
    expectError(
      () => subtractInto(big, big, new Float32Array(4999)),
      ErrorCode.BAD_SHAPE,
      "subtractInto: length 5000 ≠ 4999",
    );
    // SIMD chunks would read neighbours already written: only exact aliasing (out = a) is allowed.
    const shared = new Float32Array(5001);
    expectError(
      () => subtractInto(shared.subarray(1), big, shared.subarray(0, 5000)),
      ErrorCode.INVALID_CONFIG,
      "overlaps",
    );
    expectError(() => addScaledInPlace(big, new Float32Array(3), 2), ErrorCode.BAD_SHAPE, "addScaledInPlace");
    expectError(
      () =>
        weightedMeanInto([big, new Float32Array(4999)], Float64Array.of(0.5, 0.5), new Float32Array(5000)),
      ErrorCode.BAD_SHAPE,
      "weightedMeanInto",
    );
    expectError(
      () => weightedMeanInto([big], Float64Array.of(0.5, 0.5), new Float32Array(5000)),
      ErrorCode.INVALID_CONFIG,
      "1 vectors, 2 weights",
    );
  });
});
