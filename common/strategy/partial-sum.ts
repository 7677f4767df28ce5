import { addMod } from "../crypto/secagg/quantize.js";
import { ErrorCode, FedsimError } from "../errors.js";

/**
 * Hierarchical aggregation's math (docs/SCALE-OUT.md): an edge turns its clients' updates into
 * one partial sum (Σ wₖ·Δₖ, Σ wₖ, count), the coordinator adds the edges' partial sums, and a
 * strategy that accepts a sum (FedAvg and its server optimisers) divides by the total weight as
 * it does for secure aggregation. Pure functions over Float32Arrays: no sockets, no tfjs.
 */
export interface PartialSum {
  /** Σ wₖ·Δₖ over the clients summed. */
  sum: Float32Array;
  /** Σ wₖ. */
  totalWeight: number;
  /** How many clients the sum holds. */
  count: number;
}

/**
 * Σ wₖ·Δₖ of equally long vectors, accumulated in float64 and rounded once to float32, so a
 * sum of many small updates keeps the precision the coordinator's weighted mean has.
 */
export function partialSum(vectors: readonly Float32Array[], weights: readonly number[]): PartialSum {
  if (vectors.length !== weights.length) {
    throw new FedsimError(ErrorCode.BAD_SHAPE, "partialSum: vectors and weights differ in length");
  }
  if (vectors.length === 0) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, "partialSum: no vectors to sum");
  }
  const n = vectors[0].length;
  const acc = new Float64Array(n);
  let total = 0;
  vectors.forEach((v, k) => {
    const w = weights[k];
    if (!(Number.isFinite(w) && w >= 0)) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `partialSum: weight ${w} is not a finite number ≥ 0`);
    }
    if (v.length !== n) throw new FedsimError(ErrorCode.BAD_SHAPE, `partialSum: length ${v.length} ≠ ${n}`);
    for (let i = 0; i < n; i++) acc[i] += w * v[i];
    total += w;
  });
  return { sum: Float32Array.from(acc), totalWeight: total, count: vectors.length };
}

/** The sum of several partial sums (the edges' of one round), in float64 per coordinate. */
export function addPartialSums(parts: readonly PartialSum[]): PartialSum {
  if (parts.length === 0) throw new FedsimError(ErrorCode.INVALID_CONFIG, "addPartialSums: no partial sums");
  const n = parts[0].sum.length;
  const acc = new Float64Array(n);
  let total = 0;
  let count = 0;
  for (const part of parts) {
    if (part.sum.length !== n) {
      throw new FedsimError(ErrorCode.BAD_SHAPE, `addPartialSums: length ${part.sum.length} ≠ ${n}`);
    }
    if (!(Number.isFinite(part.totalWeight) && part.totalWeight >= 0)) {
      throw new FedsimError(ErrorCode.BAD_AGGREGATE, `a partial sum's total weight is ${part.totalWeight}`);
    }
    if (!(Number.isInteger(part.count) && part.count >= 0)) {
      throw new FedsimError(ErrorCode.BAD_AGGREGATE, `a partial sum's count is ${part.count}`);
    }
    const s = part.sum;
    for (let i = 0; i < n; i++) acc[i] += s[i];
    total += part.totalWeight;
    count += part.count;
  }
  return { sum: Float32Array.from(acc), totalWeight: total, count };
}

/**
 * The sum mod 2^32 of masked SecAgg vectors. Masks cancel in any grouping of the additions, so an
 * edge may add its clients' masked vectors and the coordinator the edges' sums: the total is the
 * same words as adding every client's vector at the coordinator.
 */
export function maskedSum(vectors: readonly Uint32Array[]): Uint32Array {
  if (vectors.length === 0) throw new FedsimError(ErrorCode.INVALID_CONFIG, "maskedSum: no vectors to sum");
  const n = vectors[0].length;
  const out = new Uint32Array(n);
  for (const v of vectors) {
    if (v.length !== n) throw new FedsimError(ErrorCode.BAD_SHAPE, `maskedSum: length ${v.length} ≠ ${n}`);
    addMod(out, v);
  }
  return out;
}
