import type { DashboardOptions } from "../server/observe/observers.js";
import type { Scenario } from "./schema.js";

/** What the dashboard lists as a scenario run's configuration; tokens and paths stay out. */
export function scenarioDashboard(scenario: Scenario, strategyName: string): DashboardOptions {
  const { name: _name, ...strategyOptions } = scenario.strategy;
  const privacy = scenario.privacy;
  const dp = privacy?.dp;
  const privacyText = [
    dp ? `${dp.mode} DP (z=${dp.noiseMultiplier}, S=${dp.clipNorm}, δ=${dp.delta})` : "",
    privacy?.secagg ? `SecAgg (${privacy.secagg.graph})` : "",
    privacy?.envelope ? "envelopes" : "",
  ].filter(Boolean);
  return {
    config: {
      scenario: scenario.name,
      model: scenario.model,
      dataset: scenario.dataset.name,
      partition: describe(scenario.partition),
      clients: scenario.clients + (scenario.external?.clients ?? 0),
      "clients per round": scenario.clientsPerRound ?? `fraction ${scenario.fractionFit}`,
      rounds: scenario.rounds,
      clock: scenario.clock,
      strategy: strategyName,
      ...(Object.keys(strategyOptions).length > 0 ? { "strategy options": describe(strategyOptions) } : {}),
      "local epochs (E)": scenario.fit.epochs,
      "batch size (B)": scenario.fit.batchSize,
      "learning rate": scenario.fit.learningRate,
      "round deadline (s)": scenario.roundDeadlineSeconds,
      privacy: privacyText.length > 0 ? privacyText.join(", ") : "none",
      seed: scenario.seed,
    },
    ...(dp?.targetEpsilon !== undefined ? { targetEpsilon: dp.targetEpsilon } : {}),
  };
}

function describe(value: object): string {
  return Object.entries(value)
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : String(v)}`)
    .join(", ");
}
