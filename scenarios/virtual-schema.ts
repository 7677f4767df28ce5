import { z } from "zod";
import { FedsimError } from "../common/errors.js";
import type { Scenario } from "./schema.js";
import { AvailabilityClock, availabilityClockSchema } from "./sim/availability-clock.js";
import { deviceProfileSchema } from "./sim/device-profiles.js";
import { Fleet } from "./sim/fleet.js";

/**
 * A scenario's `virtual` block (with `clock: virtual`): which devices the clients run on, what a
 * training example costs, and when they may train, all on the simulated clock. The engine behind
 * it lives in scenarios/sim/ (docs/SCENARIOS.md, "Virtual time and device profiles").
 */
export const virtualBlockSchema = z
  .object({
    /**
     * "phones": the built-in phone fleet (scenarios/sim/default-fleet.ts); `{ profiles: [...] }`
     * inline; `{ file: "fleet.csv" }` (or .json) relative to the scenario file.
     */
    devices: z
      .union([
        z.literal("phones"),
        z.object({ profiles: z.array(deviceProfileSchema).min(1).max(255) }).strict(),
        z.object({ file: z.string().min(1) }).strict(),
      ])
      .default("phones"),
    /**
     * Seconds per example per epoch at speed 1, for profiles that do not set their own. "measured"
     * times the scenario's model on this machine once per run, so only a pinned number makes runs
     * reproducible across machines. Unset: the built-in phones' published cost
     * (PHONE_SECONDS_PER_EXAMPLE) with `devices: phones`, else "measured".
     */
    secondsPerExample: z.union([z.literal("measured"), z.number().positive().finite()]).optional(),
    /**
     * The run's simulated-time budget in hours: no round starts, and no asynchronous update is
     * taken, past it. `rounds` still bounds the run; whichever comes first ends it.
     */
    simulatedHours: z.number().positive().finite().optional(),
    /** UTC hour of day at simulated time 0. */
    startHour: z.number().min(0).lt(24).default(0),
    /** When devices may train: time zones, hourly online odds, charging windows, outages. */
    availability: availabilityClockSchema.omit({ startUtcHour: true }).optional(),
    /** Simulated seconds the server spends between rounds (aggregation, evaluation). */
    serverSeconds: z.number().nonnegative().finite().default(0),
    /** Wall-clock safety net for each real fit, SecAgg stage and evaluation; the deadlines that count are simulated. */
    wallDeadlineSeconds: z.number().positive().finite().default(3600),
  })
  .strict();
export type VirtualBlock = z.infer<typeof virtualBlockSchema>;

/** The defaults of the block, for scenarios with `clock: virtual` that give none. */
export function virtualBlockOf(scenario: Pick<Scenario, "virtual">): VirtualBlock {
  return scenario.virtual ?? virtualBlockSchema.parse({});
}

/**
 * Cross-field checks of a virtual-clock scenario, one line per problem, naming the field and,
 * for the wall-clock fields, what replaces them.
 */
export function virtualClockProblems(s: Scenario, source: string): string[] {
  const at = (field: string) => `${source}: ${field}`;
  if (s.clock !== "virtual") {
    return s.virtual ? [`${at("virtual")}: only used with clock: virtual`] : [];
  }
  const problems: string[] = [];
  if (s.external) {
    problems.push(
      `${at("external")}: real client nodes run on the wall clock; clock: virtual simulates every client (use clock: real)`,
    );
  }
  if (s.heterogeneity) {
    problems.push(
      `${at("heterogeneity")}: makes clients sleep on the wall clock; with clock: virtual give virtual.devices (profiles with speed, downlinkMbps, uplinkMbps, latencyMs)`,
    );
  }
  if (s.availability) {
    problems.push(
      `${at("availability")}: counts rounds on the wall clock; with clock: virtual use virtual.availability (time zones, charging windows, outages in simulated time)`,
    );
  }
  if (s.dropouts) {
    problems.push(
      `${at("dropouts")}: disconnects clients on the wall clock; with clock: virtual devices drop out by their profile's dropoutPerHour, and virtual.availability.outages take them offline`,
    );
  }
  const block = virtualBlockOf(s);
  const devices = block.devices;
  if (typeof devices === "object" && "profiles" in devices) {
    problems.push(...detailsOf(() => new Fleet(devices.profiles, s.seed), `${source}: virtual.devices.`));
  }
  problems.push(
    ...detailsOf(
      () => new AvailabilityClock({ ...block.availability, startUtcHour: block.startHour }, s.seed),
      `${source}: virtual.`,
    ),
  );
  return problems;
}

/** A constructor's refusal as problem lines under `prefix`. */
function detailsOf(build: () => unknown, prefix: string): string[] {
  try {
    build();
    return [];
  } catch (err) {
    if (!(err instanceof FedsimError)) throw err;
    return (err.details.length > 0 ? err.details : [err.message]).map((d) => `${prefix}${d}`);
  }
}

/**
 * The wall-clock limit of each real fit, SecAgg stage and federated evaluation: the round's
 * deadline on the real clock; on the virtual clock only a safety net, as the deadline is simulated.
 */
export function wallDeadlineSeconds(
  scenario: Pick<Scenario, "clock" | "virtual" | "roundDeadlineSeconds">,
): number {
  return scenario.clock === "virtual"
    ? virtualBlockOf(scenario).wallDeadlineSeconds
    : scenario.roundDeadlineSeconds;
}
