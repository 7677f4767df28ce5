import { clipToNorm } from "../dp/clip.js";
import { addGaussianNoise, type NormalSource } from "../dp/noise.js";
import { ErrorCode, FedsimError } from "../errors.js";
import type { Rng } from "../rng.js";
import type { TensorSpec } from "../weights.js";
import type {
  AggregateResult,
  AggregationInput,
  ClientFailure,
  ClientInfo,
  FitPlan,
  Strategy,
} from "./strategy.js";
import { requireIntegerAtLeast, requireNonNegativeFinite, requirePositiveFinite } from "./validate.js";

/**
 * A strategy that delegates everything to an inner one. Cross-cutting behaviour (privacy, logging,
 * update filtering) subclasses this and overrides only the method it changes, so it composes with
 * any strategy instead of being written into each.
 */
export class StrategyWrapper implements Strategy {
  constructor(protected readonly inner: Strategy) {}

  get name(): string {
    return this.inner.name;
  }

  get requiresIndividualUpdates(): boolean {
    return this.inner.requiresIndividualUpdates;
  }

  configureFit(round: number, available: readonly ClientInfo[], rng: Rng): FitPlan {
    return this.inner.configureFit(round, available, rng);
  }

  aggregateFit(
    round: number,
    current: Float32Array,
    specs: readonly TensorSpec[],
    input: AggregationInput,
    failures: readonly ClientFailure[],
  ): AggregateResult {
    return this.inner.aggregateFit(round, current, specs, input, failures);
  }

  state(): unknown {
    return this.inner.state();
  }

  restore(state: unknown): void {
    this.inner.restore(state);
  }
}

export interface CentralDpOptions {
  /** z: the noise std is z·S. Finite, ≥ 0 (0 clips without noise: no privacy, for debugging). */
  noiseMultiplier: number;
  /** S: each update is clipped to L2 norm ≤ S. Finite, > 0. */
  clipNorm: number;
  /** Where the Gaussian draws come from; use cryptoNormalSource() for anything real. */
  noise: NormalSource;
  /**
   * The fixed denominator of the mean (usually clients sampled per round), an integer ≥ 1. A
   * fixed one, rather than the number of survivors, keeps each client's influence at S/m.
   */
  expectedClients: number;
}

/**
 * Central DP-FedAvg (McMahan et al. 2018) as a wrapper: clip each update to S, sum, add N(0, z²S²)
 * to the sum, and hand the inner strategy `{ kind: "sum", totalWeight: expectedClients }`.
 *
 * fedsim's own runs do NOT use this: `server/privacy-plugin.ts` asks clients to clip before
 * sending (the honest place, since the server then never holds an unclipped update) and does the
 * accounting. This wrapper is for users composing strategies in code, e.g. a FedAdam on a noisy
 * mean. It does no accounting: ε is the caller's job (common/dp/accountant.ts).
 *
 * Strategies that need individual updates (median, Krum) cannot be wrapped: they would get a sum.
 * The inner strategy sees only the sum, so its partial-work rule does not apply here.
 */
export class CentralDpStrategy extends StrategyWrapper {
  readonly noiseMultiplier: number;
  readonly clipNorm: number;
  readonly expectedClients: number;
  private readonly noise: NormalSource;

  constructor(inner: Strategy, options: CentralDpOptions) {
    super(inner);
    if (inner.requiresIndividualUpdates) {
      throw new FedsimError(
        ErrorCode.INCOMPATIBLE_OPTIONS,
        `withCentralDp: strategy "${inner.name}" needs each client's update, but central DP hands it only a noisy sum; wrap a mean-based strategy (fedavg, fedprox, fedavgm, fedadam, fedyogi, fedadagrad)`,
      );
    }
    requireNonNegativeFinite("noiseMultiplier", options.noiseMultiplier);
    requirePositiveFinite("clipNorm", options.clipNorm);
    requireIntegerAtLeast("expectedClients", options.expectedClients, 1);
    if (typeof options.noise?.normal !== "function") {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        "noise must be a NormalSource (an object with normal())",
      );
    }
    this.noiseMultiplier = options.noiseMultiplier;
    this.clipNorm = options.clipNorm;
    this.expectedClients = options.expectedClients;
    this.noise = options.noise;
  }

  override get name(): string {
    return `${this.inner.name}+central-dp`;
  }

  override aggregateFit(
    round: number,
    current: Float32Array,
    specs: readonly TensorSpec[],
    input: AggregationInput,
    failures: readonly ClientFailure[],
  ): AggregateResult {
    if (input.kind === "sum") {
      throw new FedsimError(
        ErrorCode.INCOMPATIBLE_OPTIONS,
        "withCentralDp: got a sum, but central DP must clip each update before summing",
      );
    }
    const noisy = this.noisySum(
      input.updates.map((u) => u.delta),
      current.length,
    );
    const result = this.inner.aggregateFit(
      round,
      current,
      specs,
      {
        kind: "sum",
        weightedDeltaSum: noisy.sum,
        totalWeight: this.expectedClients,
        count: input.updates.length,
        clientIds: input.updates.map((u) => u.clientId),
      },
      failures,
    );
    return {
      ...result,
      metrics: {
        ...result.metrics,
        dpClipped: noisy.clipped,
        dpNoiseStd: this.noiseMultiplier * this.clipNorm,
      },
    };
  }

  /** Σ clip(Δₖ, S) + N(0, (zS)²); the callers' deltas are left untouched. */
  private noisySum(deltas: readonly Float32Array[], length: number): { sum: Float32Array; clipped: number } {
    const accumulator = new Float64Array(length);
    const scratch = new Float32Array(length);
    let clipped = 0;
    for (const delta of deltas) {
      if (delta.length !== length) {
        throw new FedsimError(
          ErrorCode.BAD_SHAPE,
          `withCentralDp: update length ${delta.length} ≠ ${length}`,
        );
      }
      scratch.set(delta);
      if (clipToNorm(scratch, this.clipNorm).clipped) clipped++;
      for (let i = 0; i < length; i++) accumulator[i] += scratch[i];
    }
    const sum = Float32Array.from(accumulator);
    addGaussianNoise(sum, this.noiseMultiplier * this.clipNorm, this.noise);
    return { sum, clipped };
  }
}

/** Wraps `strategy` with central DP (see CentralDpStrategy). */
export function withCentralDp(strategy: Strategy, options: CentralDpOptions): Strategy {
  return new CentralDpStrategy(strategy, options);
}
