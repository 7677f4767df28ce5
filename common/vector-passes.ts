/**
 * The passes every round makes over whole model updates: the weighted mean of the updates, the scan for
 * NaN/±Inf in each received one, the client's local − global, and out += scale·x. On a 1.7M-parameter
 * model V8 runs these loops at 3–6 ns per element; the optional native addon's SIMD loops
 * (native/src/vector.cc) run them several times faster.
 *
 * Both implementations give the same bits (NaN payloads aside, which JavaScript leaves to the engine): the
 * native loops do the same float64 operations in the same order, without fused multiply-adds. The addon
 * is loaded lazily, once; without it (not built, FEDSIM_DISABLE_NATIVE=1, or built before these passes
 * existed) the JavaScript loops below run. No tfjs here: the coordinator uses these without a backend.
 */
import { ErrorCode, FedsimError } from "./errors.js";
import { type AddonLoad, BINARY_OPS, loadConfiguredAddon } from "./native/addon.js";

export interface VectorPasses {
  /**
   * out[i] = Σ_k weights[k]·vectors[k][i], accumulated in float64 from 0 in k order and rounded to float32
   * once. `weights` are the final factors: the caller divides by their total (so both implementations
   * multiply by the very same doubles). `out` may be one of the vectors.
   */
  weightedMeanInto(vectors: readonly Float32Array[], weights: Float64Array, out: Float32Array): void;
  /** Index of the first NaN or ±Inf, or -1. */
  firstNonFiniteIndex(values: Float32Array): number;
  /** out[i] = a[i] − b[i] (float32 arithmetic, as JavaScript's float64 rounded to float32 gives); out may be a. */
  subtractInto(a: Float32Array, b: Float32Array, out: Float32Array): void;
  /** out[i] += scale·x[i], computed in float64 and rounded to float32. */
  addScaledInPlace(out: Float32Array, x: Float32Array, scale: number): void;
}

/** Elements per float64 accumulator block of weightedMeanInto (the native loop uses the same blocks). */
const MEAN_BLOCK = 8192;

/** The JavaScript loops: the fallback, and the reference the native loops are tested against. */
export const jsVectorPasses: VectorPasses = {
  weightedMeanInto(vectors, weights, out) {
    const n = out.length;
    const acc = new Float64Array(Math.min(n, MEAN_BLOCK));
    for (let start = 0; start < n; start += MEAN_BLOCK) {
      const len = Math.min(n, start + MEAN_BLOCK) - start;
      acc.fill(0, 0, len);
      for (let k = 0; k < vectors.length; k++) {
        const v = vectors[k];
        const w = weights[k];
        for (let i = 0; i < len; i++) acc[i] += w * v[start + i];
      }
      for (let i = 0; i < len; i++) out[start + i] = acc[i];
    }
  },
  firstNonFiniteIndex(values) {
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      // v - v is NaN exactly when v is NaN or ±Inf; cheaper than Number.isFinite per element.
      if (v - v !== 0) return i;
    }
    return -1;
  },
  subtractInto(a, b, out) {
    for (let i = 0; i < out.length; i++) out[i] = a[i] - b[i];
  },
  addScaledInPlace(out, x, scale) {
    for (let i = 0; i < out.length; i++) out[i] += scale * x[i];
  },
};

export interface VectorPassesChoice {
  implementation: "native" | "js";
  /** Where the native loops come from, or why the JavaScript ones run. */
  reason: string;
  passes: VectorPasses;
}

/** The implementation a given addon load allows: native when the addon has the passes. */
export function chooseVectorPasses(load: AddonLoad): VectorPassesChoice {
  if (load.addon === undefined) return { implementation: "js", reason: load.reason, passes: jsVectorPasses };
  const { weightedMean, firstNonFinite, addScaledInPlace, binary } = load.addon;
  if (weightedMean === undefined || firstNonFinite === undefined || addScaledInPlace === undefined) {
    return {
      implementation: "js",
      reason: `${load.path} predates the native vector passes (rebuild: npm run build:native)`,
      passes: jsVectorPasses,
    };
  }
  return {
    implementation: "native",
    reason: `SIMD loops of ${load.path}`,
    passes: {
      weightedMeanInto: (vectors, weights, out) => weightedMean(vectors, weights, out),
      firstNonFiniteIndex: (values) => firstNonFinite(values),
      // The backend's elementwise Sub (same-length operands take its SIMD loop).
      subtractInto: (a, b, out) => binary(BINARY_OPS.Sub, a, 1, b, 1, out),
      addScaledInPlace: (out, x, scale) => addScaledInPlace(out, x, scale),
    },
  };
}

let active: VectorPassesChoice | undefined;

function activeChoice(): VectorPassesChoice {
  active ??= chooseVectorPasses(loadConfiguredAddon());
  return active;
}

/** Which implementation runs the passes on large inputs, and why (for `fedsim doctor`). */
export function vectorPassesImplementation(): { implementation: "native" | "js"; reason: string } {
  const { implementation, reason } = activeChoice();
  return { implementation, reason };
}

/**
 * Shorter inputs stay in JavaScript: a native call costs ~2 µs here, as much as 300–500 elements of the
 * JS loop, and a process that only ever sees small vectors (unit tests) never loads the addon.
 */
const NATIVE_MIN_LENGTH = 1024;

function passesFor(length: number): VectorPasses {
  return length < NATIVE_MIN_LENGTH ? jsVectorPasses : activeChoice().passes;
}

function requireSameLength(out: Float32Array, x: Float32Array, pass: string): void {
  if (out.length !== x.length) {
    throw new FedsimError(ErrorCode.BAD_SHAPE, `${pass}: length ${x.length} ≠ ${out.length}`);
  }
}

/** See VectorPasses.weightedMeanInto: `weights` are already divided by their total. */
export function weightedMeanInto(
  vectors: readonly Float32Array[],
  weights: Float64Array,
  out: Float32Array,
): Float32Array {
  if (vectors.length === 0 || vectors.length !== weights.length) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `weightedMeanInto: ${vectors.length} vectors, ${weights.length} weights`,
    );
  }
  for (const v of vectors) requireSameLength(out, v, "weightedMeanInto");
  passesFor(out.length).weightedMeanInto(vectors, weights, out);
  return out;
}

/** Index of the first NaN or ±Inf in `values`, or -1. */
export function firstNonFiniteIndex(values: Float32Array): number {
  return passesFor(values.length).firstNonFiniteIndex(values);
}

/** out[i] = a[i] − b[i]; `out` may be `a` or `b` itself (in place) but may not partly overlap either. */
export function subtractInto(a: Float32Array, b: Float32Array, out: Float32Array): void {
  requireSameLength(out, a, "subtractInto");
  requireSameLength(out, b, "subtractInto");
  for (const input of [a, b]) {
    if (partlyOverlaps(out, input)) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        "subtractInto: out overlaps an input without being it (the SIMD loop would read values it already wrote)",
      );
    }
  }
  passesFor(out.length).subtractInto(a, b, out);
}

function partlyOverlaps(x: Float32Array, y: Float32Array): boolean {
  if (x.buffer !== y.buffer || x.byteOffset === y.byteOffset) return false;
  return x.byteOffset < y.byteOffset + y.byteLength && y.byteOffset < x.byteOffset + x.byteLength;
}

/** out[i] += scale·x[i], in place (float64 arithmetic, one rounding per element). */
export function addScaledInPlace(out: Float32Array, x: Float32Array, scale: number): void {
  requireSameLength(out, x, "addScaledInPlace");
  passesFor(out.length).addScaledInPlace(out, x, scale);
}
