/**
 * Adaptive clipping (Andrew, Thakkar, McMahan & Ramaswamy 2021, "Differentially Private Learning
 * with Adaptive Clipping"), geometric update. Each sampled client reports one bit, whether its
 * update norm was within the current clip norm C; the server adds Gaussian noise to the sum of bits
 * and moves C so that a fraction γ of updates stays unclipped:
 *
 *   b̄ = (Σ bᵢ + N(0, σ_b²)) / m,   C ← C · exp(−η_C (b̄ − γ))
 *
 * σ_b is in units of COUNTS (clients), not of the fraction b̄: it is added to the sum of bits
 * before dividing by m. The paper suggests σ_b ≈ m/20.
 *
 * Releasing the noisy count costs privacy too. With a total noise multiplier z for the round, the
 * update sum gets the remaining share z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2), so that the two releases
 * together are as private as one Gaussian mechanism with multiplier z (the 2 comes from the
 * count's sensitivity of 1/2 once bits are centred).
 */
import { ErrorCode, FedsimError } from "../errors.js";
import type { NormalSource } from "./noise.js";
import {
  requireFinite,
  requireNonNegative,
  requirePositive,
  requirePositiveInteger,
  requireUnitInterval,
} from "./validate.js";

export interface AdaptiveClippingOptions {
  initialClipNorm: number;
  /** γ: fraction of client updates that should end up unclipped (default 0.5, the median). */
  targetQuantile?: number;
  /** η_C of the geometric update (default 0.2). */
  clipLearningRate?: number;
  /** σ_b, in counts (default expectedClientsPerRound / 20; one of the two is required). */
  clippedCountStddev?: number;
  /** m: clients per round; only used for the default σ_b. */
  expectedClientsPerRound?: number;
  /** z: the total noise multiplier of the round, shared between the count and the updates. 0 = no DP. */
  noiseMultiplier: number;
}

/** Everything needed to resume: the current C plus the fixed parameters. */
export interface AdaptiveClippingState {
  clipNorm: number;
  targetQuantile: number;
  clipLearningRate: number;
  clippedCountStddev: number;
  noiseMultiplier: number;
}

/**
 * z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2), the noise multiplier left for the update sum. Needs 2σ_b > z
 * (otherwise the count alone would use up the whole budget); z = 0 means no DP and gives 0.
 */
export function updateNoiseMultiplier(noiseMultiplier: number, clippedCountStddev: number): number {
  requireNonNegative("noiseMultiplier", noiseMultiplier);
  requireNonNegative("clippedCountStddev", clippedCountStddev);
  if (noiseMultiplier === 0) return 0;
  const remaining = noiseMultiplier ** -2 - (2 * clippedCountStddev) ** -2;
  if (!(remaining > 0)) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `noiseMultiplier (${noiseMultiplier}) and clippedCountStddev (${clippedCountStddev}) are incompatible: ` +
        "adaptive clipping needs 2·clippedCountStddev > noiseMultiplier, so raise clippedCountStddev " +
        "(or expectedClientsPerRound) or lower noiseMultiplier",
    );
  }
  return remaining ** -0.5;
}

/** Client side: 1 if the update was not clipped (norm ≤ C), else 0. */
export function clippedBit(norm: number, clipNorm: number): 0 | 1 {
  return norm <= clipNorm ? 1 : 0;
}

export class AdaptiveClipping {
  private currentClipNorm: number;
  readonly targetQuantile: number;
  readonly clipLearningRate: number;
  readonly clippedCountStddev: number;
  readonly noiseMultiplier: number;

  constructor(options: AdaptiveClippingOptions) {
    requirePositive("initialClipNorm", options.initialClipNorm);
    const targetQuantile = options.targetQuantile ?? 0.5;
    const clipLearningRate = options.clipLearningRate ?? 0.2;
    requireUnitInterval("targetQuantile", targetQuantile);
    requirePositive("clipLearningRate", clipLearningRate);
    let clippedCountStddev = options.clippedCountStddev;
    if (clippedCountStddev === undefined) {
      if (options.expectedClientsPerRound === undefined) {
        throw new FedsimError(
          ErrorCode.INVALID_CONFIG,
          "clippedCountStddev or expectedClientsPerRound is required (σ_b defaults to expectedClientsPerRound / 20)",
        );
      }
      requirePositiveInteger("expectedClientsPerRound", options.expectedClientsPerRound);
      clippedCountStddev = options.expectedClientsPerRound / 20;
    }
    // Fails fast on an impossible z / σ_b pair instead of at the first round.
    updateNoiseMultiplier(options.noiseMultiplier, clippedCountStddev);
    this.currentClipNorm = options.initialClipNorm;
    this.targetQuantile = targetQuantile;
    this.clipLearningRate = clipLearningRate;
    this.clippedCountStddev = clippedCountStddev;
    this.noiseMultiplier = options.noiseMultiplier;
  }

  /** The clip norm C to send to this round's clients. */
  get clipNorm(): number {
    return this.currentClipNorm;
  }

  /** Noise multiplier z_Δ for the sum of clipped updates (its noise std is z_Δ · C). */
  noiseMultiplierForUpdates(): number {
    return updateNoiseMultiplier(this.noiseMultiplier, this.clippedCountStddev);
  }

  static clippedBit(norm: number, clipNorm: number): 0 | 1 {
    return clippedBit(norm, clipNorm);
  }

  /**
   * Server side, after aggregation: `sumOfBits` is Σ bᵢ over the round's clients and `numClients`
   * is m, the denominator (with Poisson sampling, pass the expected count so that the number of
   * participants is not revealed unnoised).
   */
  update(sumOfBits: number, numClients: number, source: NormalSource): void {
    requireNonNegative("sumOfBits", sumOfBits);
    requirePositiveInteger("numClients", numClients);
    const noise = this.clippedCountStddev === 0 ? 0 : this.clippedCountStddev * source.normal();
    const unclippedFraction = (sumOfBits + noise) / numClients;
    const next =
      this.currentClipNorm * Math.exp(-this.clipLearningRate * (unclippedFraction - this.targetQuantile));
    requireFinite("clipNorm after update", next);
    // exp() cannot reach 0 for any sane input, but an underflow would make every later clip divide by 0.
    this.currentClipNorm = next > 0 ? next : Number.MIN_VALUE;
  }

  state(): AdaptiveClippingState {
    return {
      clipNorm: this.currentClipNorm,
      targetQuantile: this.targetQuantile,
      clipLearningRate: this.clipLearningRate,
      clippedCountStddev: this.clippedCountStddev,
      noiseMultiplier: this.noiseMultiplier,
    };
  }

  static fromState(state: AdaptiveClippingState): AdaptiveClipping {
    requirePositive("clipNorm", state?.clipNorm);
    return new AdaptiveClipping({
      initialClipNorm: state.clipNorm,
      targetQuantile: state.targetQuantile,
      clipLearningRate: state.clipLearningRate,
      clippedCountStddev: state.clippedCountStddev,
      noiseMultiplier: state.noiseMultiplier,
    });
  }
}
