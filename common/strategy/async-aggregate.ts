import { ErrorCode, FedsimError } from "../errors.js";

/**
 * The server-side math of asynchronous aggregation, over flat Float32Arrays with no sockets and
 * no tfjs. Arithmetic is float64 per element and rounds to float32 once, like aggregate.ts.
 */

/**
 * FedBuff's buffer (Nguyen et al. 2022, Algorithm 1): updates accumulate as Σ s(τᵢ)·Δᵢ, and a
 * flush after K of them moves the model by η·Σ / K. The divisor is the number of updates, not
 * the sum of their weights: stale updates shrink the step instead of being renormalised away.
 */
export class StalenessBuffer {
  private readonly sum: Float64Array;
  private buffered = 0;
  private weightSum = 0;

  constructor(readonly length: number) {
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `buffer length must be an integer ≥ 0, got ${length}`);
    }
    this.sum = new Float64Array(length);
  }

  /** Updates buffered since the last flush. */
  get count(): number {
    return this.buffered;
  }

  /** Σ s(τᵢ) over the buffered updates. */
  get totalWeight(): number {
    return this.weightSum;
  }

  /** Σ += weight·delta. */
  add(delta: Float32Array, weight: number): void {
    if (delta.length !== this.length) {
      throw new FedsimError(
        ErrorCode.BAD_SHAPE,
        `update length ${delta.length} ≠ model length ${this.length}`,
      );
    }
    if (!(weight >= 0) || !Number.isFinite(weight)) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `staleness weight must be finite and ≥ 0, got ${weight}`,
      );
    }
    const sum = this.sum;
    for (let i = 0; i < sum.length; i++) sum[i] += weight * delta[i];
    this.buffered++;
    this.weightSum += weight;
  }

  /**
   * current + η·Σ / count, as a new array (`current` is not written: it may still be on its way to
   * clients). Empties the buffer.
   */
  flush(current: Float32Array, serverLearningRate: number): Float32Array {
    if (current.length !== this.length) {
      throw new FedsimError(
        ErrorCode.BAD_SHAPE,
        `model length ${current.length} ≠ buffer length ${this.length}`,
      );
    }
    if (this.buffered === 0) throw new FedsimError(ErrorCode.INTERNAL, "flush of an empty buffer");
    const scale = serverLearningRate / this.buffered;
    const sum = this.sum;
    const next = new Float32Array(current.length);
    for (let i = 0; i < next.length; i++) next[i] = current[i] + scale * sum[i];
    sum.fill(0);
    this.buffered = 0;
    this.weightSum = 0;
    return next;
  }
}

/**
 * FedAsync's update (Xie et al. 2019, Algorithm 1): x ← (1 − α)·x + α·x_client, as a new array.
 * The client sends Δ = x_client − base, where base is the (possibly older) global model it trained
 * from, so x_client = base + Δ.
 */
export function mixInto(
  current: Float32Array,
  base: Float32Array,
  delta: Float32Array,
  alpha: number,
): Float32Array {
  if (base.length !== current.length || delta.length !== current.length) {
    throw new FedsimError(
      ErrorCode.BAD_SHAPE,
      `mixing: lengths differ (model ${current.length}, base ${base.length}, delta ${delta.length})`,
    );
  }
  if (!(alpha >= 0 && alpha <= 1)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `mixing weight must be in [0, 1], got ${alpha}`);
  }
  const keep = 1 - alpha;
  const next = new Float32Array(current.length);
  for (let i = 0; i < next.length; i++) next[i] = keep * current[i] + alpha * (base[i] + delta[i]);
  return next;
}
