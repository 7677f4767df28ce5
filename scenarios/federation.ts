import type { AnyStrategy } from "../common/strategy/async-strategy.js";
import { isAsyncStrategy } from "../common/strategy/async-strategy.js";
import { assertStrategyFitsPrivacy, PrivacyPlugin } from "../server/plugins/privacy.js";
import type { RoundLoopOptions } from "../server/round-options.js";
import type { Scenario } from "./schema.js";

/**
 * A scenario's federation sections turned into the coordinator's pieces, for both a simulated
 * run (scenarios/runner.ts) and `fedsim coordinator --config` over real nodes.
 */

export interface PrivacyContext {
  /** Cap on one client's example-count weight under secure aggregation. */
  maxWeight: number;
  /** How long a secure-aggregation stage waits for answers. */
  stageTimeoutMs: number;
  expectedClientsPerRound: number;
  log: (line: string) => void;
}

/**
 * The round plugin for the scenario's `privacy` section (DP, envelopes, secure aggregation), or
 * undefined without one. Asynchronous strategies seal with a key per fit instead
 * (`asyncControl.envelope`); the strategy factory already refused DP and SecAgg for them.
 */
export function privacyPlugin(
  scenario: Scenario,
  strategy: AnyStrategy,
  context: PrivacyContext,
): PrivacyPlugin | undefined {
  const privacy = scenario.privacy;
  if (isAsyncStrategy(strategy) || !(privacy?.dp || privacy?.envelope || privacy?.secagg)) return undefined;
  const secagg = privacy.secagg
    ? {
        graph: privacy.secagg.graph,
        ...(privacy.secagg.threshold !== undefined ? { threshold: privacy.secagg.threshold } : {}),
        clipRange: privacy.secagg.clipRange,
        maxWeight: context.maxWeight,
        stageTimeoutMs: context.stageTimeoutMs,
        seed: scenario.seed,
      }
    : undefined;
  assertStrategyFitsPrivacy(strategy, { ...(secagg ? { secagg } : {}), dp: privacy.dp });
  return new PrivacyPlugin({
    envelope: privacy.envelope,
    ...(privacy.dp ? { dp: privacy.dp } : {}),
    ...(secagg ? { secagg } : {}),
    expectedClientsPerRound: context.expectedClientsPerRound,
    log: context.log,
  });
}

/** Over-selection and the evaluation cadence, centralised and federated. */
export function evaluationControl(
  scenario: Scenario,
  timeoutMs: number,
): Pick<RoundLoopOptions, "overSelection" | "evaluateEvery" | "federatedEvaluation"> {
  const federated = scenario.evaluation.federated;
  return {
    ...(scenario.overSelection ? { overSelection: scenario.overSelection } : {}),
    evaluateEvery: scenario.evaluation.everyRounds,
    ...(federated
      ? {
          federatedEvaluation: {
            fraction: federated.fraction,
            everyRounds: federated.everyRounds,
            timeoutMs,
          },
        }
      : {}),
  };
}

/** Clients a round samples (or, asynchronously, keeps training): what DP and SecAgg plan for. */
export function clientsPerRound(scenario: Scenario, strategy: AnyStrategy): number {
  return isAsyncStrategy(strategy)
    ? strategy.concurrency
    : (scenario.clientsPerRound ??
        Math.max(scenario.minFitClients, Math.ceil(scenario.fractionFit * scenario.clients)));
}
