import { z } from "zod";
import { ErrorCode, FedsimError } from "../common/errors.js";
import type { Scenario } from "./schema.js";

/**
 * Per-strategy changes in a sweep. A fair comparison keeps the data, partition, clients, fleet
 * and seed fixed, but each algorithm runs with its own knobs: FedAvg over-selects with a
 * deadline, FedBuff keeps M clients training with a buffer of K. Only the fields below may
 * differ; `fit`, `strategy` and `evaluation` are merged field by field into the scenario's own,
 * the others replace it. The sweep names the strategy, so `strategy.name` may not be overridden.
 */
export const SWEEP_OVERRIDE_FIELDS = [
  "rounds",
  "clientsPerRound",
  "fractionFit",
  "minFitClients",
  "roundDeadlineSeconds",
  "overSelection",
  "fit",
  "strategy",
  "evaluation",
] as const;

const MERGED_FIELDS = new Set(["fit", "strategy", "evaluation"]);

/** Which fields an override may set; their values are checked by the scenario schema itself. */
export const sweepOverrideSchema = z
  .object(Object.fromEntries(SWEEP_OVERRIDE_FIELDS.map((f) => [f, z.unknown().optional()])))
  .strict()
  .refine((o) => !(typeof o.strategy === "object" && o.strategy !== null && "name" in o.strategy), {
    message: "strategy.name: the sweep names the strategy; override its options only",
  });
export type SweepOverride = z.infer<typeof sweepOverrideSchema>;

/** The scenario `strategy` runs with in a sweep: its override (if any) applied, unparsed. */
export function withOverride(scenario: Scenario, strategy: string): Record<string, unknown> {
  const override = scenario.sweep?.overrides?.[strategy] ?? {};
  const merged: Record<string, unknown> = { ...scenario };
  for (const [field, value] of Object.entries(override)) {
    if (value === undefined) continue;
    const base = merged[field];
    merged[field] =
      MERGED_FIELDS.has(field) && typeof base === "object" && typeof value === "object"
        ? { ...base, ...value }
        : value;
  }
  return merged;
}

/**
 * Checks each override as the scenario it makes (`parse` is the scenario parser, passed in to
 * keep the import one-way), one line per problem naming `sweep.overrides.<strategy>`.
 */
export function sweepOverrideProblems(
  scenario: Scenario,
  source: string,
  parse: (raw: unknown, source: string) => Scenario,
): string[] {
  const problems: string[] = [];
  const strategies = scenario.sweep?.strategies ?? [];
  for (const name of Object.keys(scenario.sweep?.overrides ?? {})) {
    const where = `${source}: sweep.overrides.${name}`;
    if (!strategies.includes(name)) {
      problems.push(`${where}: not one of sweep.strategies (${strategies.join(", ")})`);
      continue;
    }
    const { sweep: _sweep, ...merged } = withOverride(scenario, name);
    try {
      parse(merged, where);
    } catch (err) {
      if (!(err instanceof FedsimError)) throw err;
      problems.push(...(err.details.length > 0 ? err.details : [err.message]));
    }
  }
  return problems;
}

/** The parsed scenario for one strategy of a sweep (its override applied and checked). */
export function scenarioForStrategy(
  scenario: Scenario,
  strategy: string,
  parse: (raw: unknown, source: string) => Scenario,
): Scenario {
  if (!scenario.sweep?.overrides?.[strategy]) return scenario;
  const { sweep, ...merged } = withOverride(scenario, strategy);
  const parsed = parse(merged, `sweep.overrides.${strategy}`);
  if (!sweep) throw new FedsimError(ErrorCode.INTERNAL, "an override without a sweep block");
  return { ...parsed, sweep: sweep as Scenario["sweep"] };
}
