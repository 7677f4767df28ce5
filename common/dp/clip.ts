/**
 * L2 clipping of a client's update: the sensitivity bound S that every DP guarantee in fedsim rests
 * on. Hence the guarantee below is exact (‖clipped‖ ≤ S) despite float32 rounding.
 */
import { ErrorCode, FedsimError } from "../errors.js";
import { addScaledInPlace } from "../vector-passes.js";
import { requirePositive } from "./validate.js";

export interface ClipResult {
  /** L2 norm before clipping. */
  norm: number;
  /** Factor the values were multiplied by (1 when nothing was clipped). */
  scale: number;
  clipped: boolean;
}

/** Euclidean norm, accumulated in float64 so a million float32 squares do not lose precision. */
export function l2Norm(values: Float32Array): number {
  let sumOfSquares = 0;
  for (let i = 0; i < values.length; i++) sumOfSquares += values[i] * values[i];
  return Math.sqrt(sumOfSquares);
}

function scaleInPlace(values: Float32Array, factor: number): void {
  for (let i = 0; i < values.length; i++) values[i] *= factor;
}

/**
 * Scales `values` in place so that ‖values‖₂ ≤ clipNorm (scale = min(1, S/‖values‖)). Rounding each
 * product to float32 can leave the norm a few ulps above S, so it is measured again and nudged
 * down until the bound holds.
 */
export function clipToNorm(values: Float32Array, clipNorm: number): ClipResult {
  requirePositive("clipNorm", clipNorm);
  const norm = l2Norm(values);
  if (!Number.isFinite(norm)) {
    throw new FedsimError(ErrorCode.NON_FINITE, "clipToNorm: the update contains NaN or Infinity");
  }
  if (norm <= clipNorm) return { norm, scale: 1, clipped: false };
  let scale = clipNorm / norm;
  scaleInPlace(values, scale);
  // The margin starts at float32's rounding (2^-24) and doubles, so the bound always ends up holding.
  for (let attempt = 0; attempt < 40; attempt++) {
    const after = l2Norm(values);
    if (after <= clipNorm) break;
    const margin = Math.min(2 ** (attempt - 24), 0.5);
    const nudge = (clipNorm / after) * (1 - margin);
    scaleInPlace(values, nudge);
    scale *= nudge;
  }
  return { norm, scale, clipped: true };
}

/**
 * Central DP's sum, Σₖ clip(Δₖ, S), clipping each delta **in place** first. The coordinator does
 * this itself rather than trust the clients' clipping: one client that skips it (or lies) still
 * moves the sum by at most S, which is what the noise N(0, z²S²) is calibrated to.
 */
export function sumClipped(
  deltas: readonly Float32Array[],
  clipNorm: number,
  length: number,
): { sum: Float32Array; clipped: number } {
  const sum = new Float32Array(length);
  let clipped = 0;
  for (const delta of deltas) {
    if (delta.length !== length) {
      throw new FedsimError(ErrorCode.BAD_SHAPE, `sumClipped: update length ${delta.length} ≠ ${length}`);
    }
    if (clipToNorm(delta, clipNorm).clipped) clipped++;
    addScaledInPlace(sum, delta, 1);
  }
  return { sum, clipped };
}
