// Your server-side algorithm. It is registered by name, so src/scenario.ts (or
// `fedsim run --strategy capped-fedavg`) can use it.
import { defineStrategy, FedAvg, type Strategy, weightedAverage } from "fedsim";

/**
 * Moves `next` back towards `current` so the step is at most `maxStep` long (L2). Pure math,
 * kept apart from the strategy so test/project.test.ts can check it directly.
 */
export function capStep(current: Float32Array, next: Float32Array, maxStep: number): Float32Array {
  let squared = 0;
  for (let i = 0; i < current.length; i++) squared += (next[i] - current[i]) ** 2;
  const norm = Math.sqrt(squared);
  if (norm <= maxStep) return next;
  const scale = maxStep / norm;
  return next.map((w, i) => current[i] + scale * (w - current[i]));
}

export const cappedFedAvg = defineStrategy({
  name: "capped-fedavg",
  description: "FedAvg with the server step's L2 norm capped at strategy.options.maxStep",
  create(context) {
    const maxStep = Number(context.options.maxStep ?? 1);
    // FedAvg with the scenario's sampling and fit config; clients' metrics averaged by examples.
    const fedavg = new FedAvg({ ...context.fedAvgOptions, fitMetricsAggregation: weightedAverage() });
    const strategy: Strategy = {
      name: "capped-fedavg",
      requiresIndividualUpdates: false,
      configureFit: (round, available, rng) => fedavg.configureFit(round, available, rng),
      aggregateFit(round, current, specs, input, failures) {
        const result = fedavg.aggregateFit(round, current, specs, input, failures);
        // weights null: too few results, the previous model stays.
        if (result.weights === null) return result;
        return { ...result, weights: capStep(current, result.weights, maxStep) };
      },
      state: () => fedavg.state(),
      restore: (state) => fedavg.restore(state),
    };
    return strategy;
  },
});
