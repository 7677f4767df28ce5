import { ErrorCode, FedsimError } from "../errors.js";

/**
 * Pure aggregation math over flat Float32Arrays. No sockets, no tfjs: the strategies call these,
 * and tests check them against hand computations.
 */

/**
 * Weighted mean of equally long vectors, written into `out`. Accumulates in float64 per
 * coordinate block so that 100 updates of ~1e-3 do not lose precision in float32.
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
  const block = 4096;
  const acc = new Float64Array(block);
  for (let start = 0; start < n; start += block) {
    const end = Math.min(n, start + block);
    const len = end - start;
    acc.fill(0, 0, len);
    for (let k = 0; k < vectors.length; k++) {
      const v = vectors[k];
      const w = weights[k] / total;
      for (let i = 0; i < len; i++) acc[i] += w * v[start + i];
    }
    for (let i = 0; i < len; i++) result[start + i] = acc[i];
  }
  return result;
}

/** out += scale * x, in place. */
export function addScaledInPlace(out: Float32Array, x: Float32Array, scale = 1): void {
  if (out.length !== x.length)
    throw new FedsimError(ErrorCode.BAD_SHAPE, `length ${x.length} ≠ ${out.length}`);
  for (let i = 0; i < out.length; i++) out[i] += scale * x[i];
}

export function scaleInPlace(x: Float32Array, scale: number): void {
  for (let i = 0; i < x.length; i++) x[i] *= scale;
}
