import { describeError, ErrorCode } from "../common/errors.js";
import type { AggregationInput, ClientFailure, Strategy } from "../common/strategy/strategy.js";
import { firstNonFiniteIndex } from "../common/vector-passes.js";
import { type FlatWeights, mergeTensors } from "../common/weights.js";

export interface AggregationOutcome {
  /** Why the round kept the previous model; undefined when the model moved. */
  kept: string | undefined;
  strategyMetrics: Record<string, number>;
  fitMetrics: Record<string, number> | undefined;
}

/**
 * The round's AGGREGATING step: the strategy turns the collected input into new weights, which
 * replace the model's trainable tensors only if they are whole and finite. A strategy that refuses
 * its input, or whose aggregate is refused, keeps the model and gets its state back.
 */
export function aggregateRound(
  strategy: Strategy,
  model: FlatWeights,
  round: number,
  /**
   * The round's snapshot of the trainable weights: the model has not changed since it was taken,
   * and strategies never write it (it may still be on its way to a slow client).
   */
  current: FlatWeights,
  input: AggregationInput,
  failures: ClientFailure[],
): AggregationOutcome {
  let result: ReturnType<Strategy["aggregateFit"]>;
  // Momentum and moments move with every aggregation; an aggregate that is refused below must
  // not leave them poisoned for the rounds after.
  const strategyBefore = strategy.state();
  try {
    result = strategy.aggregateFit(round, current.values, current.specs, input, failures);
  } catch (err) {
    // A strategy that refuses its input (e.g. a robust rule given a sum) keeps the model.
    strategy.restore(strategyBefore);
    result = { weights: null, keptReason: `aggregation refused: ${describeError(err)}`, metrics: {} };
  }
  const outcome = { strategyMetrics: result.metrics, fitMetrics: result.fitMetrics };
  if (result.weights === null) {
    return { ...outcome, kept: result.keptReason ?? "strategy kept the previous model" };
  }
  if (result.weights.length !== current.values.length) {
    return { ...outcome, kept: "strategy returned weights of the wrong length" };
  }
  const nonFinite = firstNonFiniteIndex(result.weights);
  if (nonFinite >= 0) {
    strategy.restore(strategyBefore);
    return {
      ...outcome,
      kept: `${ErrorCode.BAD_AGGREGATE}: the aggregate is not finite (${result.weights[nonFinite]} at index ${nonFinite})`,
    };
  }
  mergeTensors(model, { specs: current.specs, values: result.weights });
  return { ...outcome, kept: undefined };
}
