import { ErrorCode, FedsimError } from "../common/errors.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import type { Strategy } from "../common/strategy/strategy.js";
import type { Scenario } from "./schema.js";

export const STRATEGY_NAMES = ["fedavg"] as const;

/** Builds the scenario's strategy, optionally overridden by name (`fedsim run --strategy`). */
export function createStrategy(scenario: Scenario, override?: string): Strategy {
  const name = override ?? scenario.strategy.name;
  const dp = scenario.privacy?.dp;
  const common = {
    fractionFit: scenario.fractionFit,
    minFitClients: scenario.minFitClients,
    ...(scenario.clientsPerRound !== undefined ? { clientsPerRound: scenario.clientsPerRound } : {}),
    fitConfig: {
      epochs: scenario.fit.epochs,
      batchSize: scenario.fit.batchSize,
      learningRate: scenario.fit.learningRate,
      ...(scenario.fit.proximalMu !== undefined ? { proximalMu: scenario.fit.proximalMu } : {}),
    },
    // DP-FedAvg bounds each client's influence by S; example-count weights would break that bound.
    uniformWeights: dp !== undefined,
    ...(scenario.strategy.serverLearningRate !== undefined
      ? { serverLearningRate: scenario.strategy.serverLearningRate }
      : {}),
  };
  switch (name) {
    case "fedavg":
      return new FedAvg(common);
    default:
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `strategy: unknown "${name}"; choose one of ${STRATEGY_NAMES.join(", ")}`,
      );
  }
}
