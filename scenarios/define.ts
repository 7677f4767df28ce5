import type { RoundRecord } from "../server/round-record.js";
import { parseScenario, type Scenario, type ScenarioInput } from "./schema.js";

/**
 * Scenarios in TypeScript: the same fields as a scenario file, plus hooks for what a file cannot
 * say ("at round 5, kill 30% of the clients; at round 8, double the latency"). Hooks run in the
 * `fedsim run` process and act on the virtual clients through their pools.
 *
 *   export default defineScenario({
 *     scenario: { name: "churn", clients: 50, rounds: 10 },
 *     hooks: {
 *       async onRoundStart(ctx) {
 *         if (ctx.round === 5) await ctx.kill({ fraction: 0.3 });
 *         if (ctx.round === 8) await ctx.setNetworkScale(2);
 *       },
 *     },
 *   });
 */
export interface ScenarioHooks {
  /** Before the round is sampled, after the scenario's availability for it was applied. */
  onRoundStart?(ctx: RoundContext): void | Promise<void>;
  /** After the round was aggregated, evaluated and checkpointed. */
  onRoundEnd?(ctx: RoundContext, record: RoundRecord): void | Promise<void>;
}

export interface RoundContext {
  round: number;
  /** How many virtual clients the scenario has (indices 0..clients−1). */
  clients: number;
  /** Take clients offline until revived: given indices, or a seeded fraction of those still alive. */
  kill(target: readonly number[] | { fraction: number }): Promise<number[]>;
  /** Bring killed clients back (all of them without an argument). */
  revive(indices?: readonly number[]): Promise<number[]>;
  /** Multiply every client's network delay (latency and transfer time) by this factor. */
  setNetworkScale(scale: number): Promise<void>;
  /** Clients killed so far and not revived. */
  killed(): number[];
  /** End the run after this round, with a reason that lands in summary.json. */
  stop(reason: string): void;
  log(line: string): void;
}

export interface ScenarioDefinition {
  scenario: Scenario;
  hooks: ScenarioHooks;
}

/** Validates the scenario part at once, so a broken script fails before anything starts. */
export function defineScenario(definition: {
  scenario: ScenarioInput;
  hooks?: ScenarioHooks;
}): ScenarioDefinition {
  return {
    scenario: parseScenario(definition.scenario, `scenario ${definition.scenario.name ?? "(unnamed)"}`),
    hooks: definition.hooks ?? {},
  };
}

export function isScenarioDefinition(value: unknown): value is ScenarioDefinition {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Partial<ScenarioDefinition>;
  return typeof v.scenario === "object" && v.scenario !== null && typeof v.hooks === "object";
}
