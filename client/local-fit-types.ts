import type { TrainMetrics } from "../common/protocol.js";
import type { FitConfig } from "../common/strategy/strategy.js";
import type { FlatWeights, TensorSpec } from "../common/weights.js";

/**
 * What one local fit takes and gives, for the workbench (workbench.ts) and the custom client
 * logic it runs (custom-client.ts); its own module so that neither of those imports the other.
 */

export interface LocalFitInput {
  /** The round (or model version) this fit belongs to, for custom client logic. */
  round?: number;
  /** The global weights; the model views them during the fit, so nobody may write to them meanwhile. */
  weights: FlatWeights;
  /** Frozen tensors, viewed the same way. */
  frozen?: FlatWeights;
  config: FitConfig;
  seed: number;
  /**
   * Checked once this fit's turn on the shared model comes: a reason not to train any more (the
   * round was cancelled while it queued behind other virtual clients) aborts it with CANCELLED.
   */
  abandoned?: () => string | null;
}

export interface LocalFitOutput {
  specs: TensorSpec[];
  /** local − global over the trainable tensors. */
  delta: Float32Array;
  numExamples: number;
  metrics: TrainMetrics;
}
