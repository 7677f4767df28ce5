import { ErrorCode, FedsimError } from "../errors.js";
import type { FitConfig } from "../protocol.js";
import { type Rng, sampleWithoutReplacement } from "../rng.js";
import { addScaledInPlace, weightedMean } from "./aggregate.js";
import type { AggregateResult, AggregationInput, ClientInfo, FitPlan, Strategy } from "./strategy.js";

export interface FedAvgOptions {
  /** Fraction of connected clients sampled per round (C in McMahan et al.). */
  fractionFit?: number;
  /** A round with fewer results than this keeps the previous model. */
  minFitClients?: number;
  /** Fixed number of clients per round; overrides fractionFit when set. */
  clientsPerRound?: number;
  /** Config sent to clients each round; a function allows schedules. */
  onFitConfig?: (round: number) => FitConfig;
  fitConfig?: FitConfig;
  /** Weight clients equally instead of by example count (DP-FedAvg needs this to bound sensitivity). */
  uniformWeights?: boolean;
  /** Server learning rate applied to the averaged delta (1 = plain FedAvg). */
  serverLearningRate?: number;
}

export const DEFAULT_FIT_CONFIG: FitConfig = { epochs: 1, batchSize: 10, learningRate: 0.05 };

/** FedAvg (McMahan et al. 2017): the example-count-weighted mean of client deltas. */
export class FedAvg implements Strategy {
  readonly name: string = "fedavg";
  readonly requiresIndividualUpdates: boolean = false;
  protected readonly fractionFit: number;
  protected readonly minFitClients: number;
  protected readonly clientsPerRound: number | undefined;
  protected readonly onFitConfig: (round: number) => FitConfig;
  protected readonly uniformWeights: boolean;
  protected readonly serverLearningRate: number;

  constructor(options: FedAvgOptions = {}) {
    this.fractionFit = options.fractionFit ?? 1;
    this.minFitClients = options.minFitClients ?? 1;
    this.clientsPerRound = options.clientsPerRound;
    const fitConfig = options.fitConfig ?? DEFAULT_FIT_CONFIG;
    this.onFitConfig = options.onFitConfig ?? (() => fitConfig);
    this.uniformWeights = options.uniformWeights ?? false;
    this.serverLearningRate = options.serverLearningRate ?? 1;
    if (!(this.fractionFit > 0 && this.fractionFit <= 1)) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `fractionFit must be in (0, 1], got ${this.fractionFit}`,
      );
    }
    if (!Number.isInteger(this.minFitClients) || this.minFitClients < 1) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `minFitClients must be an integer ≥ 1, got ${this.minFitClients}`,
      );
    }
    if (
      this.clientsPerRound !== undefined &&
      (!Number.isInteger(this.clientsPerRound) || this.clientsPerRound < 1)
    ) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `clientsPerRound must be an integer ≥ 1, got ${this.clientsPerRound}`,
      );
    }
    if (!(this.serverLearningRate > 0)) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `serverLearningRate must be > 0, got ${this.serverLearningRate}`,
      );
    }
  }

  /** How many clients a round samples from `available` connected ones. */
  sampleSize(available: number): number {
    const wanted = this.clientsPerRound ?? Math.ceil(this.fractionFit * available);
    return Math.min(available, Math.max(wanted, this.minFitClients));
  }

  configureFit(round: number, available: readonly ClientInfo[], rng: Rng): FitPlan {
    const k = this.sampleSize(available.length);
    // Sort first so that sampling depends on the seed, not on connection order.
    const ids = available.map((c) => c.id).sort();
    const picked = sampleWithoutReplacement(ids.length, k, rng).map((i) => ids[i]);
    return { clientIds: picked, config: this.onFitConfig(round) };
  }

  aggregateFit(
    _round: number,
    current: Float32Array,
    _specs: unknown,
    input: AggregationInput,
    failures: readonly unknown[],
  ): AggregateResult {
    const count = input.kind === "individual" ? input.updates.length : input.count;
    if (count < this.minFitClients) {
      return {
        weights: null,
        keptReason: `only ${count} result(s), fewer than minFitClients=${this.minFitClients} (${failures.length} failure(s))`,
        metrics: {},
      };
    }
    const meanDelta = this.meanDelta(input);
    const next = current.slice();
    addScaledInPlace(next, meanDelta, this.serverLearningRate);
    return { weights: next, metrics: {} };
  }

  protected meanDelta(input: AggregationInput): Float32Array {
    if (input.kind === "sum") {
      const mean = input.weightedDeltaSum.slice();
      const inv = 1 / input.totalWeight;
      for (let i = 0; i < mean.length; i++) mean[i] *= inv;
      return mean;
    }
    const weights = input.updates.map((u) => (this.uniformWeights ? 1 : u.numExamples));
    return weightedMean(
      input.updates.map((u) => u.delta),
      weights,
    );
  }

  state(): unknown {
    return {};
  }

  restore(_state: unknown): void {}
}
