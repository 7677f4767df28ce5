import { ErrorCode, FedsimError } from "../common/errors.js";
import { knownNames, registeredStrategy, type StrategyDefinition } from "../common/registry.js";
import { type AnyStrategy, type AsyncStrategy, isAsyncStrategy } from "../common/strategy/async-strategy.js";
import { FedAsync } from "../common/strategy/fedasync.js";
import { FedAvg, type FedAvgOptions } from "../common/strategy/fedavg.js";
import { FedAvgM } from "../common/strategy/fedavgm.js";
import { FedBuff } from "../common/strategy/fedbuff.js";
import { FedMedian } from "../common/strategy/fedmedian.js";
import { FedAdagrad, FedAdam, FedYogi } from "../common/strategy/fedopt.js";
import { FedProx } from "../common/strategy/fedprox.js";
import { FedTrimmedAvg } from "../common/strategy/fedtrimmedavg.js";
import { Krum, MultiKrum } from "../common/strategy/krum.js";
import { learningRateAt } from "../common/strategy/lr-schedule.js";
import {
  isAsyncStrategyName,
  isStrategyName,
  STRATEGY_NAMES,
  type StrategyName,
} from "../common/strategy/names.js";
import type { Strategy } from "../common/strategy/strategy.js";
import { didYouMean } from "../common/suggest.js";
import type { Scenario } from "./schema.js";

/** Re-exported for callers that only know the factory. */
export { isStrategyName, STRATEGY_NAMES, type StrategyName } from "../common/strategy/names.js";

/**
 * Builds the scenario's strategy, optionally overridden by name (`fedsim run --strategy`).
 *
 * Options under `strategy:` apply only to the strategies that use them and are ignored by the
 * others, so a scenario tuned for one strategy can be rerun with `--strategy` for comparison.
 * Defaults when unset: serverLearningRate 1 (0.1 for fedadam/fedyogi/fedadagrad), momentum 0.9,
 * beta1 0.9, beta2 0.99, tau 1e-3, trimBeta 0.2, byzantineClients 1, multiKrumM n − f,
 * acceptPartialWork false (fedprox always accepts partial work). fedprox needs proximalMu, from
 * `strategy.proximalMu` or `fit.proximalMu` (if both are set they must agree). fedbuff and
 * fedasync are asynchronous (server/async-loop.ts): concurrency defaults to the synchronous
 * sample size, bufferSize to concurrency, mixing to 0.6, staleness to 1/√(1+τ).
 */
export function createStrategy(scenario: Scenario, override?: string): AnyStrategy {
  const name = override ?? scenario.strategy.name;
  const custom = isStrategyName(name) ? undefined : registeredStrategy(name);
  if (!isStrategyName(name) && !custom) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `strategy: unknown "${name}"${didYouMean(name, knownNames("strategy"))}; choose one of ${knownNames("strategy").join(", ")}`,
    );
  }
  const common = fedAvgOptions(scenario);
  const strategy = custom
    ? buildRegistered(custom, scenario, common)
    : isAsyncStrategyName(name)
      ? buildAsync(name as StrategyName, scenario)
      : build(name as StrategyName, scenario, common);
  if (!isAsyncStrategy(strategy)) refuseIndividualUnderPrivacy(strategy, scenario);
  return strategy;
}

/** The scenario's sampling, fit config and DP weighting, as FedAvg and its kin take them. */
function fedAvgOptions(scenario: Scenario): FedAvgOptions {
  const s = scenario.strategy;
  const dp = scenario.privacy?.dp;
  const fitConfig = {
    epochs: scenario.fit.epochs,
    batchSize: scenario.fit.batchSize,
    learningRate: scenario.fit.learningRate,
    ...(scenario.fit.proximalMu !== undefined ? { proximalMu: scenario.fit.proximalMu } : {}),
  };
  const schedule = scenario.fit.learningRateSchedule;
  return {
    fractionFit: scenario.fractionFit,
    minFitClients: scenario.minFitClients,
    ...(scenario.clientsPerRound !== undefined ? { clientsPerRound: scenario.clientsPerRound } : {}),
    fitConfig,
    ...(schedule
      ? {
          onFitConfig: (round: number) => ({
            ...fitConfig,
            learningRate: learningRateAt(schedule, fitConfig.learningRate, round, scenario.rounds),
          }),
        }
      : {}),
    // DP-FedAvg bounds each client's influence by S; example-count weights would break that bound.
    uniformWeights: dp !== undefined,
    ...(s.serverLearningRate !== undefined ? { serverLearningRate: s.serverLearningRate } : {}),
    ...(s.acceptPartialWork !== undefined ? { acceptPartialWork: s.acceptPartialWork } : {}),
  };
}

/** Refuses before the run starts, rather than in the first round's aggregation. */
function refuseIndividualUnderPrivacy(strategy: Strategy, scenario: Scenario): void {
  const dp = scenario.privacy?.dp;
  if (!strategy.requiresIndividualUpdates || (dp === undefined && scenario.privacy?.secagg === undefined))
    return;
  const why =
    dp !== undefined ? "DP hands the strategy a noised sum" : "secure aggregation reveals only the sum";
  throw new FedsimError(
    ErrorCode.INCOMPATIBLE_OPTIONS,
    `strategy "${strategy.name}" needs each client's update, but ${why}; use fedavg, fedprox, fedavgm, fedadam, fedyogi or fedadagrad with privacy`,
  );
}

/** A strategy from `defineStrategy`, given the scenario's settings and the built-ins to wrap. */
function buildRegistered(
  definition: StrategyDefinition,
  scenario: Scenario,
  common: FedAvgOptions,
): AnyStrategy {
  const strategy = definition.create({
    fedAvgOptions: common,
    options: scenario.strategy.options ?? {},
    rounds: scenario.rounds,
    clients: scenario.clients,
    seed: scenario.seed,
    builtin: (builtinName) => {
      if (!isStrategyName(builtinName)) {
        throw new FedsimError(
          ErrorCode.INVALID_CONFIG,
          `strategy "${definition.name}": builtin("${builtinName}") is not a built-in; choose one of ${STRATEGY_NAMES.join(", ")}`,
        );
      }
      return isAsyncStrategyName(builtinName)
        ? buildAsync(builtinName, scenario)
        : build(builtinName, scenario, common);
    },
  });
  const shaped =
    typeof strategy === "object" &&
    strategy !== null &&
    (isAsyncStrategy(strategy)
      ? typeof strategy.onUpdate === "function"
      : typeof strategy.configureFit === "function" && typeof strategy.aggregateFit === "function");
  if (!shaped) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `strategy "${definition.name}": create() must return a Strategy (configureFit, aggregateFit, state, restore) or an AsyncStrategy`,
    );
  }
  if (isAsyncStrategy(strategy)) refuseRoundFeatures(strategy.name, scenario);
  return strategy;
}

/**
 * Refuses what needs synchronous rounds, for an asynchronous strategy: DP's accountant and secure
 * aggregation's masks are per round and per sampled cohort, over-selection and federated
 * evaluation are round mechanisms, and scripted availability is decided per round (on the
 * virtual clock availability comes from the device fleet instead).
 */
function refuseRoundFeatures(name: string, scenario: Scenario): void {
  const refuse = (field: string, why: string) => {
    throw new FedsimError(
      ErrorCode.INCOMPATIBLE_OPTIONS,
      `${field}: ${why} cannot be combined with the asynchronous strategy "${name}"`,
    );
  };
  if (scenario.privacy?.dp)
    refuse("privacy.dp", "differential privacy (its accountant counts sampled rounds)");
  if (scenario.privacy?.secagg)
    refuse("privacy.secagg", "secure aggregation (it unmasks the sum of one round's cohort)");
  if ((scenario.overSelection ?? 0) > 0) refuse("overSelection", "over-selection (a round mechanism)");
  if (scenario.evaluation.federated)
    refuse("evaluation.federated", "federated evaluation (run after each round)");
  if (scenario.availability) refuse("availability", "scripted per-round availability");
}

/** FedBuff or FedAsync from the scenario's `strategy` block, after refusing round features. */
function buildAsync(name: StrategyName, scenario: Scenario): AsyncStrategy {
  refuseRoundFeatures(name, scenario);
  const s = scenario.strategy;
  const fitConfig = {
    epochs: scenario.fit.epochs,
    batchSize: scenario.fit.batchSize,
    learningRate: scenario.fit.learningRate,
    ...(scenario.fit.proximalMu !== undefined ? { proximalMu: scenario.fit.proximalMu } : {}),
  };
  const schedule = scenario.fit.learningRateSchedule;
  const concurrency =
    s.concurrency ??
    scenario.clientsPerRound ??
    Math.max(scenario.minFitClients, Math.ceil(scenario.fractionFit * scenario.clients));
  const common = {
    concurrency,
    fitConfig,
    // A client starting from version v trains with what round v + 1 of a synchronous run would use.
    ...(schedule
      ? {
          onFitConfig: (version: number) => ({
            ...fitConfig,
            learningRate: learningRateAt(schedule, fitConfig.learningRate, version + 1, scenario.rounds),
          }),
        }
      : {}),
    ...(s.staleness ? { staleness: s.staleness } : {}),
  };
  if (name === "fedasync")
    return new FedAsync({ ...common, ...(s.mixing !== undefined ? { mixing: s.mixing } : {}) });
  return new FedBuff({
    ...common,
    bufferSize: s.bufferSize ?? concurrency,
    ...(s.serverLearningRate !== undefined ? { serverLearningRate: s.serverLearningRate } : {}),
  });
}

function build(name: StrategyName, scenario: Scenario, common: FedAvgOptions): Strategy {
  const s = scenario.strategy;
  const fedOpt = {
    ...common,
    ...(s.beta1 !== undefined ? { beta1: s.beta1 } : {}),
    ...(s.beta2 !== undefined ? { beta2: s.beta2 } : {}),
    ...(s.tau !== undefined ? { tau: s.tau } : {}),
  };
  const krum = {
    ...common,
    ...(s.byzantineClients !== undefined ? { byzantineClients: s.byzantineClients } : {}),
  };
  switch (name) {
    case "fedavg":
      return new FedAvg(common);
    case "fedprox":
      return new FedProx({ ...common, proximalMu: resolveProximalMu(scenario) });
    case "fedavgm":
      return new FedAvgM({ ...common, ...(s.momentum !== undefined ? { momentum: s.momentum } : {}) });
    case "fedadam":
      return new FedAdam(fedOpt);
    case "fedyogi":
      return new FedYogi(fedOpt);
    case "fedadagrad":
      return new FedAdagrad(fedOpt);
    case "fedmedian":
      return new FedMedian(common);
    case "fedtrimmedavg":
      return new FedTrimmedAvg({ ...common, ...(s.trimBeta !== undefined ? { trimBeta: s.trimBeta } : {}) });
    case "krum":
      return new Krum(krum);
    case "multikrum":
      return new MultiKrum({ ...krum, ...(s.multiKrumM !== undefined ? { multiKrumM: s.multiKrumM } : {}) });
    case "fedbuff":
    case "fedasync":
      throw new FedsimError(ErrorCode.INTERNAL, `${name} is asynchronous; buildAsync builds it`);
  }
}

/** FedProx's μ: `strategy.proximalMu`, else `fit.proximalMu`; required, and the two must agree. */
function resolveProximalMu(scenario: Scenario): number {
  const fromStrategy = scenario.strategy.proximalMu;
  const fromFit = scenario.fit.proximalMu;
  if (scenario.strategy.acceptPartialWork === false) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      "strategy.acceptPartialWork: fedprox always keeps partial work; use fedavg to drop it",
    );
  }
  if (fromStrategy !== undefined && fromFit !== undefined && fromStrategy !== fromFit) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `proximalMu: strategy.proximalMu (${fromStrategy}) and fit.proximalMu (${fromFit}) disagree; set one`,
    );
  }
  const mu = fromStrategy ?? fromFit;
  if (mu === undefined) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      "strategy.proximalMu: fedprox needs μ ≥ 0 (strategy.proximalMu or fit.proximalMu); the FedProx paper tries 0.001, 0.01, 0.1 and 1",
    );
  }
  return mu;
}
