import type { Rng } from "../rng.js";
import type { TensorSpec } from "../weights.js";
import type { MetricsResult } from "./metrics.js";

/** What the coordinator knows about a connected client when sampling. */
export interface ClientInfo {
  id: string;
}

/** One client's update as the strategy sees it: delta = local − global, over the trainable tensors. */
export interface ClientUpdate {
  clientId: string;
  numExamples: number;
  delta: Float32Array;
  /** The trainer's loss, accuracy and epochs, plus any metrics custom client logic reported. */
  metrics: { loss: number; accuracy: number; epochsCompleted: number; [name: string]: number };
}

/** Why a sampled client contributed nothing; "cancelled" is over-selection stopping a slow client. */
export type FailureReason = "timeout" | "disconnect" | "rejected" | "error" | "cancelled";

export const FAILURE_REASONS: readonly FailureReason[] = [
  "timeout",
  "disconnect",
  "rejected",
  "error",
  "cancelled",
];

export interface ClientFailure {
  clientId: string;
  reason: FailureReason;
  code: string;
  message: string;
}

/**
 * Aggregation input: individual updates, or (under secure aggregation) only their sum.
 * `weightedDeltaSum` is Σ wₖ·Δₖ and `totalWeight` is Σ wₖ.
 */
export type AggregationInput =
  | { kind: "individual"; updates: ClientUpdate[] }
  | { kind: "sum"; weightedDeltaSum: Float32Array; totalWeight: number; count: number; clientIds: string[] };

/**
 * What a strategy asks each sampled client to do in one fit. The wire schema
 * (common/protocol.ts `fitConfigSchema`) is checked against this type at compile time, so a
 * field added here cannot be stripped on its way to the client.
 */
export interface FitConfig {
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** FedProx's proximal term μ; 0 or absent trains plain local SGD. */
  proximalMu?: number;
  /** Stop after this many optimiser steps in total, even mid-epoch. */
  maxSteps?: number;
}

export interface FitPlan {
  clientIds: string[];
  config: FitConfig;
}

export interface AggregateResult {
  /** The new global values of the trainable tensors; null keeps the previous model. */
  weights: Float32Array | null;
  /** Why the model was kept, when it was. */
  keptReason?: string;
  metrics: Record<string, number>;
  /** The clients' fit metrics, aggregated (Flower's fit_metrics_aggregation_fn); in the round record. */
  fitMetrics?: Record<string, number>;
}

/**
 * A federated optimisation algorithm, in Flower's shape. The round loop knows no algorithm: it
 * asks the strategy whom to train and with what config, then hands back results and failures.
 */
export interface Strategy {
  readonly name: string;
  /** True for strategies that must see each update (median, Krum): they cannot run under SecAgg. */
  readonly requiresIndividualUpdates: boolean;
  /**
   * How the strategy weighs one update in a mean (its example count, or 1 each): an edge that sums
   * updates for it (docs/SCALE-OUT.md) must weigh them the same way. Absent: by example count.
   */
  readonly updateWeighting?: "examples" | "uniform";
  configureFit(round: number, available: readonly ClientInfo[], rng: Rng): FitPlan;
  aggregateFit(
    round: number,
    current: Float32Array,
    specs: readonly TensorSpec[],
    input: AggregationInput,
    failures: readonly ClientFailure[],
  ): AggregateResult;
  /**
   * Federated evaluation's per-client results (loss, accuracy and custom metrics) as the round's
   * metrics (Flower's evaluate_metrics_aggregation_fn); they land in the record's `federated.metrics`.
   */
  aggregateEvaluate?(round: number, results: readonly MetricsResult[]): Record<string, number>;
  /** Serialisable state (server optimiser moments etc.) for checkpoints. */
  state(): unknown;
  restore(state: unknown): void;
}

export interface SamplingOptions {
  fractionFit: number;
  minFitClients: number;
  /** Sample at least this many (Flower's min_fit_clients also bounds sampling from below). */
  minAvailableClients: number;
}
