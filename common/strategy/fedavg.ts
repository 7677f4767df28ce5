import { ErrorCode, FedsimError } from "../errors.js";
import { type Rng, sampleWithoutReplacement } from "../rng.js";
import { addScaledInPlace } from "../vector-passes.js";
import { weightedMean } from "./aggregate.js";
import type { MetricsAggregationFn, MetricsResult } from "./metrics.js";
import type {
  AggregateResult,
  AggregationInput,
  ClientFailure,
  ClientInfo,
  ClientUpdate,
  FitConfig,
  FitPlan,
  Strategy,
} from "./strategy.js";

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
  /** Server learning rate applied to the aggregated delta (1 = plain FedAvg). */
  serverLearningRate?: number;
  /**
   * Keep results whose `epochsCompleted` is below the round config's `epochs` (default false:
   * drop them, as FedAvg treats stragglers in the FedProx paper). Only individual updates carry
   * this metric; a secure-aggregation sum is aggregated as it is. When the round config sets
   * `maxSteps` the server itself asked for bounded work, so nothing counts as partial.
   */
  acceptPartialWork?: boolean;
  /** Turns the clients' fit metrics into the round's (`fitMetrics` in the round record). */
  fitMetricsAggregation?: MetricsAggregationFn;
  /** Turns federated evaluation's per-client metrics into the round's (`federated.metrics`). */
  evaluateMetricsAggregation?: MetricsAggregationFn;
}

export const DEFAULT_FIT_CONFIG: FitConfig = { epochs: 1, batchSize: 10, learningRate: 0.05 };

/**
 * FedAvg (McMahan et al. 2017): the example-count-weighted mean of client deltas, scaled by a
 * server learning rate. It is also the skeleton of every other strategy here: subclasses change
 * how deltas are combined (`combineDeltas`: median, Krum, …) or how the combined delta moves the
 * model (`applyServerUpdate`: momentum, Adam, …), and inherit sampling, minFitClients and the
 * partial-work rule.
 */
export class FedAvg implements Strategy {
  readonly name: string = "fedavg";
  readonly requiresIndividualUpdates: boolean = false;
  protected readonly fractionFit: number;
  protected readonly minFitClients: number;
  protected readonly clientsPerRound: number | undefined;
  protected readonly onFitConfig: (round: number) => FitConfig;
  protected readonly uniformWeights: boolean;
  get updateWeighting(): "examples" | "uniform" {
    return this.uniformWeights ? "uniform" : "examples";
  }
  protected readonly serverLearningRate: number;
  protected readonly acceptPartialWork: boolean;
  protected readonly fitMetricsAggregation: MetricsAggregationFn | undefined;
  protected readonly evaluateMetricsAggregation: MetricsAggregationFn | undefined;

  constructor(options: FedAvgOptions = {}) {
    this.fractionFit = options.fractionFit ?? 1;
    this.minFitClients = options.minFitClients ?? 1;
    this.clientsPerRound = options.clientsPerRound;
    const fitConfig = options.fitConfig ?? DEFAULT_FIT_CONFIG;
    this.onFitConfig = options.onFitConfig ?? (() => fitConfig);
    this.uniformWeights = options.uniformWeights ?? false;
    this.serverLearningRate = options.serverLearningRate ?? 1;
    this.acceptPartialWork = options.acceptPartialWork ?? false;
    this.fitMetricsAggregation = options.fitMetricsAggregation;
    this.evaluateMetricsAggregation = options.evaluateMetricsAggregation;
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
    if (!(this.serverLearningRate > 0 && Number.isFinite(this.serverLearningRate))) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `serverLearningRate must be a finite number > 0, got ${this.serverLearningRate}`,
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
    return { clientIds: picked, config: this.fitConfigFor(round) };
  }

  /** The config clients train with in `round`; also what partial work is measured against. */
  fitConfigFor(round: number): FitConfig {
    return this.onFitConfig(round);
  }

  aggregateFit(
    round: number,
    current: Float32Array,
    _specs: unknown,
    input: AggregationInput,
    failures: readonly ClientFailure[],
  ): AggregateResult {
    if (this.requiresIndividualUpdates && input.kind === "sum") {
      throw new FedsimError(
        ErrorCode.INCOMPATIBLE_OPTIONS,
        `strategy "${this.name}" needs each client's update, but got only their sum (secure aggregation or central DP); use a mean-based strategy such as fedavg`,
      );
    }
    const fitMetrics =
      this.fitMetricsAggregation && input.kind === "individual"
        ? { fitMetrics: this.fitMetricsAggregation(input.updates.map(metricsResult)) }
        : {};
    const result = this.aggregateUpdates(round, current, input, failures);
    return { ...result, ...fitMetrics };
  }

  aggregateEvaluate(_round: number, results: readonly MetricsResult[]): Record<string, number> {
    return this.evaluateMetricsAggregation?.(results) ?? {};
  }

  private aggregateUpdates(
    round: number,
    current: Float32Array,
    input: AggregationInput,
    failures: readonly ClientFailure[],
  ): AggregateResult {
    const { input: usable, droppedPartial } = this.dropPartialWork(round, input);
    const metrics: Record<string, number> = { droppedPartial };
    const count = usable.kind === "individual" ? usable.updates.length : usable.count;
    if (count < this.minFitClients) {
      const dropped = droppedPartial > 0 ? `, ${droppedPartial} dropped for partial work` : "";
      return {
        weights: null,
        keptReason: `only ${count} result(s), fewer than minFitClients=${this.minFitClients} (${failures.length} failure(s)${dropped})`,
        metrics,
      };
    }
    const refusal = this.refuseAggregation(count);
    if (refusal !== null) return { weights: null, keptReason: refusal, metrics };
    const combined = this.combineDeltas(usable, metrics);
    const next = this.applyServerUpdate(current, combined, metrics);
    return { weights: next, metrics };
  }

  /** Drops results that trained fewer epochs than asked, unless partial work is accepted. */
  protected dropPartialWork(
    round: number,
    input: AggregationInput,
  ): { input: AggregationInput; droppedPartial: number } {
    if (this.acceptPartialWork || input.kind === "sum") return { input, droppedPartial: 0 };
    const config = this.fitConfigFor(round);
    if (config.maxSteps !== undefined) return { input, droppedPartial: 0 };
    const complete = input.updates.filter((u) => u.metrics.epochsCompleted >= config.epochs);
    return {
      input: { kind: "individual", updates: complete },
      droppedPartial: input.updates.length - complete.length,
    };
  }

  /** A reason to keep the model despite enough results (Krum's n > 2f + 2), or null. */
  protected refuseAggregation(_count: number): string | null {
    return null;
  }

  /** The combined delta Δ̄: here the weighted mean (or the sum over its total weight), in an array of its own. */
  protected combineDeltas(input: AggregationInput, _metrics: Record<string, number>): Float32Array {
    if (input.kind === "sum") {
      // Under secure aggregation the total is itself a sum of the clients' word.
      if (!(Number.isFinite(input.totalWeight) && input.totalWeight > 0)) {
        throw new FedsimError(
          ErrorCode.BAD_AGGREGATE,
          `the sum's total weight is ${input.totalWeight}; it must be a finite number > 0`,
        );
      }
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

  /** The new global values from the current ones and Δ̄: x + η·Δ̄. */
  protected applyServerUpdate(
    current: Float32Array,
    combined: Float32Array,
    _metrics: Record<string, number>,
  ): Float32Array {
    if (this.serverLearningRate === 1) {
      // combined + current is current + combined bit for bit (one float64 sum, rounded once), and
      // `combined` is this round's own array: no model-sized copy for plain FedAvg.
      addScaledInPlace(combined, current, 1);
      return combined;
    }
    const next = current.slice();
    addScaledInPlace(next, combined, this.serverLearningRate);
    return next;
  }

  state(): unknown {
    return {};
  }

  restore(_state: unknown): void {}
}

function metricsResult(update: ClientUpdate): MetricsResult {
  return { clientId: update.clientId, numExamples: update.numExamples, metrics: update.metrics };
}

/** The individual updates' deltas, for rules that cannot work on a sum. */
export function individualDeltas(input: AggregationInput, strategy: string): Float32Array[] {
  if (input.kind === "sum") {
    throw new FedsimError(
      ErrorCode.INCOMPATIBLE_OPTIONS,
      `strategy "${strategy}" needs each client's update, but got only their sum`,
    );
  }
  return input.updates.map((u) => u.delta);
}
