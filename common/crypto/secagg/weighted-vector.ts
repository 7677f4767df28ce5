import { ErrorCode, FedsimError } from "../../errors.js";
import { chooseScale, quantize } from "./quantize.js";

/**
 * fedsim's SecAgg input: [w·clamp(Δ, ±clipRange), w] in fixed point, so the coordinator gets a
 * weighted mean from sums alone. The fixed-point range must cover the largest value any client
 * can send, and no more: every bit of range it wastes is a bit of resolution lost.
 */
export interface WeightedVectorEncoding {
  /** Each coordinate of Δ is clamped to ±clipRange before weighting. */
  clipRange: number;
  /** Fixed-point scale; sums of the round's clients never wrap mod 2^32. */
  scale: number;
  /** Weight by the example count (capped at maxWeight); otherwise every client weighs 1. */
  weighted: boolean;
  /** The largest weight a client can have: the example-count cap, or 1 when unweighted. */
  maxWeight: number;
}

/**
 * The encoding of one round. Unweighted (DP, where every client counts once) the weights are all
 * 1, so the range is clipRange (or 1, for the weight coordinate), not clipRange times the largest
 * example count, and the resolution is that much finer.
 */
export function chooseEncoding(
  options: { clipRange: number; weighted: boolean; maxWeight: number },
  maxClients: number,
): WeightedVectorEncoding {
  if (!(Number.isFinite(options.maxWeight) && options.maxWeight >= 1)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `maxWeight must be ≥ 1 (got ${options.maxWeight})`);
  }
  const maxWeight = options.weighted ? options.maxWeight : 1;
  const encoding = { clipRange: options.clipRange, weighted: options.weighted, maxWeight, scale: 1 };
  return { ...encoding, scale: chooseScale(valueRange(encoding), maxClients) };
}

/** The largest |value| in a client's vector: w·clipRange for the update, w for the weight itself. */
export function valueRange(encoding: Pick<WeightedVectorEncoding, "clipRange" | "maxWeight">): number {
  return Math.max(encoding.clipRange, 1) * encoding.maxWeight;
}

/** A client's vector, quantised and ready to mask. */
export function encodeWeightedVector(
  delta: Float32Array,
  numExamples: number,
  encoding: WeightedVectorEncoding,
): Uint32Array {
  const weight = encoding.weighted ? Math.min(numExamples, encoding.maxWeight) : 1;
  const clip = encoding.clipRange;
  const vector = new Float32Array(delta.length + 1);
  for (let i = 0; i < delta.length; i++) {
    const v = delta[i];
    vector[i] = weight * (v > clip ? clip : Math.max(v, -clip));
  }
  vector[delta.length] = weight;
  return quantize(vector, { clipRange: valueRange(encoding), scale: encoding.scale });
}
