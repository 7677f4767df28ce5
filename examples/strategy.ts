// examples/strategy.ts: a custom strategy that wraps a built-in one, registered by name.
import { defineStrategy, FedAvg, type Strategy, weightedAverage } from "fedsim";

/**
 * FedAvg whose server step (new − current weights) is at most `maxStep` long in L2 norm: one
 * round of odd updates cannot throw the model far. Scenarios name it `strategy: { name:
 * "capped-fedavg", options: { maxStep: 2 } }`; `fedsim run --strategy capped-fedavg` works too.
 */
export const cappedFedAvg = defineStrategy({
  name: "capped-fedavg",
  description: "FedAvg with the server step's L2 norm capped",
  create(context) {
    const maxStep = Number(context.options.maxStep ?? 1);
    // The scenario's sampling and fit config, plus metric aggregation for fit and evaluate.
    const inner = new FedAvg({
      ...context.fedAvgOptions,
      fitMetricsAggregation: weightedAverage(),
      evaluateMetricsAggregation: weightedAverage(),
    });
    const strategy: Strategy = {
      name: "capped-fedavg",
      requiresIndividualUpdates: false,
      configureFit: (round, available, rng) => inner.configureFit(round, available, rng),
      aggregateFit(round, current, specs, input, failures) {
        const result = inner.aggregateFit(round, current, specs, input, failures);
        if (result.weights === null) return result; // null keeps the previous model
        let squared = 0;
        for (let i = 0; i < current.length; i++) squared += (result.weights[i] - current[i]) ** 2;
        const norm = Math.sqrt(squared);
        const scale = norm > maxStep ? maxStep / norm : 1;
        const weights = result.weights.map((w, i) => current[i] + scale * (w - current[i]));
        return {
          ...result,
          weights,
          metrics: { ...result.metrics, stepNorm: norm, capped: scale < 1 ? 1 : 0 },
        };
      },
      aggregateEvaluate: (round, results) => inner.aggregateEvaluate(round, results),
      state: () => inner.state(),
      restore: (state) => inner.restore(state),
    };
    return strategy;
  },
});
