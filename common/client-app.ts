import type * as tf from "@tensorflow/tfjs";
import type { FitConfig } from "./strategy/strategy.js";
import type { EvalResult, TrainData, TrainResult } from "./train/trainer.js";
import type { TensorSpec } from "./weights.js";

/**
 * Custom client logic (`defineClient`), in the shape of Flower's NumPyClient: `fit` gets the global
 * weights and the round's config and returns the trained weights with the example count and its
 * metrics; `evaluate` scores the global weights. fedsim runs it inside the client's model
 * workbench (client/workbench.ts), which real client nodes and virtual clients share, so one
 * definition serves both; the transport, the delta, clipping, noise and sealing stay fedsim's.
 */
export interface ClientFitContext {
  round: number;
  config: FitConfig;
  /** Seed for anything random in this fit (the client's own seed and the round). */
  seed: number;
  /** The global values of the trainable tensors, flat; read-only (the model views them). */
  weights: Float32Array;
  specs: readonly TensorSpec[];
  /** This process's model of the run's architecture, holding the global weights. */
  model: tf.LayersModel;
  /** This client's training examples. */
  data: TrainData;
  /** fedsim's own local training (seeded minibatch SGD, FedProx's term when μ is set) on `model`. */
  train(config?: Partial<FitConfig>): Promise<TrainResult>;
}

export interface ClientFitResult {
  /** The trained values of the trainable tensors; default: read from `model` after fit returns. */
  weights?: Float32Array;
  /** The client's weight in FedAvg's mean: examples trained on (a positive integer). */
  numExamples: number;
  /**
   * Reported beside the update (not under DP or secure aggregation, which keep them on the client).
   * `loss`, `accuracy` and `epochsCompleted` fill the built-in fields (the round's trainLoss and
   * the partial-work rule, which takes a missing epochsCompleted as the epochs asked for); the
   * rest reach the strategy's metric aggregation as they are.
   */
  metrics?: Record<string, number>;
}

export interface ClientEvaluateContext {
  round: number;
  weights: Float32Array;
  specs: readonly TensorSpec[];
  /** The model holding the global weights. */
  model: tf.LayersModel;
  /** This client's held-out examples. */
  data: TrainData;
  /** fedsim's own evaluation: loss and accuracy of `model` on `data`. */
  evaluate(): Promise<EvalResult>;
}

export interface ClientEvaluateResult {
  loss: number;
  accuracy?: number;
  numExamples: number;
  /** Reach the strategy's evaluate-metrics aggregation. */
  metrics?: Record<string, number>;
}

export interface ClientDefinition {
  /** What scenarios name in `client:`. */
  name: string;
  /** Default: fedsim's local training. */
  fit?(context: ClientFitContext): ClientFitResult | Promise<ClientFitResult>;
  /** Default: fedsim's evaluation. */
  evaluate?(context: ClientEvaluateContext): ClientEvaluateResult | Promise<ClientEvaluateResult>;
}
