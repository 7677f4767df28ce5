import { ErrorCode, FedsimError } from "../errors.js";
import { weightedMeanInto } from "../vector-passes.js";

/**
 * Pure aggregation math over flat Float32Arrays. No sockets, no tfjs: the strategies call these,
 * and tests check them against hand computations. out += scale·x is `addScaledInPlace` in
 * common/vector-passes.ts, beside the other per-update passes.
 */

/**
 * Weighted mean of equally long vectors, written into `out`. Accumulates in float64 per
 * coordinate block so that 100 updates of ~1e-3 do not lose precision in float32 (common/vector-passes.ts:
 * a native SIMD loop when the addon is built, else JavaScript; both give the same bits).
 */
export function weightedMean(
  vectors: readonly Float32Array[],
  weights: readonly number[],
  out?: Float32Array,
): Float32Array {
  if (vectors.length === 0) throw new FedsimError(ErrorCode.INVALID_CONFIG, "weightedMean: no vectors");
  if (vectors.length !== weights.length) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, "weightedMean: vectors and weights differ in length");
  }
  const n = vectors[0].length;
  for (const v of vectors) {
    if (v.length !== n) throw new FedsimError(ErrorCode.BAD_SHAPE, `weightedMean: length ${v.length} ≠ ${n}`);
  }
  let total = 0;
  for (const w of weights) {
    if (!(w >= 0) || !Number.isFinite(w))
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `weightedMean: bad weight ${w}`);
    total += w;
  }
  if (total <= 0) throw new FedsimError(ErrorCode.INVALID_CONFIG, "weightedMean: weights sum to 0");
  const result = out ?? new Float32Array(n);
  if (result.length !== n)
    throw new FedsimError(ErrorCode.BAD_SHAPE, `weightedMean: out length ${result.length} ≠ ${n}`);
  // Divided here, once, so the native and the JavaScript loop multiply by the very same doubles.
  const factors = Float64Array.from(weights, (w) => w / total);
  return weightedMeanInto(vectors, factors, result);
}

export function scaleInPlace(x: Float32Array, scale: number): void {
  for (let i = 0; i < x.length; i++) x[i] *= scale;
}

/**
 * Server momentum (FedAvgM, Hsu et al. 2019), in place: v ← β·v + Δ̄, x ← x + η·v.
 * This is Flower's fedavgm.py (PyTorch SGD without dampening) with the sign flipped: Flower
 * keeps the pseudo-gradient g = −Δ̄ and steps x ← x − η·v; both give the same x.
 */
export function momentumStepInPlace(
  x: Float32Array,
  velocity: Float32Array,
  meanDelta: Float32Array,
  momentum: number,
  learningRate: number,
): void {
  requireSameLength(x, velocity, meanDelta);
  for (let i = 0; i < x.length; i++) {
    const v = momentum * velocity[i] + meanDelta[i];
    velocity[i] = v;
    x[i] += learningRate * v;
  }
}

export type AdaptiveRule = "adagrad" | "adam" | "yogi";

export interface AdaptiveStepParams {
  beta1: number;
  beta2: number;
  tau: number;
  learningRate: number;
}

/**
 * One step of the adaptive server optimisers of Reddi et al. 2021 (FedOpt, Algorithm 2), in place:
 *   m ← β1·m + (1−β1)·Δ̄
 *   v ← v + Δ̄²                            (Adagrad)
 *   v ← β2·v + (1−β2)·Δ̄²                  (Adam)
 *   v ← v − (1−β2)·Δ̄²·sign(v − Δ̄²)        (Yogi)
 *   x ← x + η·m / (√v + τ)
 * No bias correction, as in the paper and Flower. Arithmetic per coordinate is in float64.
 */
export function adaptiveStepInPlace(
  rule: AdaptiveRule,
  x: Float32Array,
  m: Float32Array,
  v: Float32Array,
  meanDelta: Float32Array,
  params: AdaptiveStepParams,
): void {
  requireSameLength(x, m, meanDelta);
  requireSameLength(x, v, meanDelta);
  const { beta1, beta2, tau, learningRate } = params;
  for (let i = 0; i < x.length; i++) {
    const d = meanDelta[i];
    const d2 = d * d;
    const mi = beta1 * m[i] + (1 - beta1) * d;
    const vOld = v[i];
    let vi: number;
    if (rule === "adagrad") vi = vOld + d2;
    else if (rule === "adam") vi = beta2 * vOld + (1 - beta2) * d2;
    else vi = vOld - (1 - beta2) * d2 * Math.sign(vOld - d2);
    m[i] = mi;
    v[i] = vi;
    // v stays ≥ 0 under all three rules (for Yogi with v > Δ̄²: v − (1−β2)·Δ̄² > β2·Δ̄²), but a
    // restored checkpoint could carry anything; max() keeps √ real.
    x[i] += (learningRate * mi) / (Math.sqrt(Math.max(vi, 0)) + tau);
  }
}

function requireSameLength(a: Float32Array, b: Float32Array, c: Float32Array): void {
  if (a.length !== b.length || a.length !== c.length) {
    throw new FedsimError(
      ErrorCode.BAD_SHAPE,
      `server optimiser: lengths differ (model ${a.length}, state ${b.length}, delta ${c.length})`,
    );
  }
}
