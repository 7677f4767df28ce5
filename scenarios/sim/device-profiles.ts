import { z } from "zod";
import { normalFrom, unitHash } from "./seeded-hash.js";

/**
 * What a kind of device is like on the virtual clock: how fast it trains, how fast its links are,
 * how often it drops out, and what it needs before it may train. A fleet (fleet.ts) gives each
 * client one of these profiles and draws its own numbers from them.
 *
 * Units are in the names: Mbit/s (10^6 bits per second), milliseconds, seconds, per hour.
 */

/**
 * A per-device number: a bare number is the same for every device of the profile; a
 * distribution gives each device its own seeded draw (fixed for that device for the whole run).
 */
export function valueSchema(value: z.ZodNumber) {
  return z.union([
    value,
    z.discriminatedUnion("kind", [
      /** median · e^(σ·N(0,1)), clamped to [min, max] when given: a long tail, as measured on fleets. */
      z
        .object({
          kind: z.literal("lognormal"),
          median: value.gt(0),
          sigma: z.number().nonnegative().finite(),
          min: value.optional(),
          max: value.optional(),
        })
        .strict(),
      z.object({ kind: z.literal("uniform"), min: value, max: value }).strict(),
    ]),
  ]);
}

const positive = valueSchema(z.number().positive().finite());
const nonnegative = valueSchema(z.number().nonnegative().finite());
export type ProfileValue = z.infer<typeof positive>;

export const deviceProfileSchema = z
  .object({
    /** A tier name for reports, e.g. "low-end phone". */
    name: z.string().min(1),
    /** Relative weight of this profile in a fleet (normalised over the fleet); equal when absent. */
    share: z.number().positive().finite().optional(),
    /**
     * Compute speed relative to the reference that the run's seconds-per-example describes:
     * 0.25 trains four times slower. Defaults to 1.
     */
    speed: positive.optional(),
    /** This device's own training cost per example per epoch, in seconds; overrides the run's. */
    secondsPerExample: positive.optional(),
    /** Link rates in Mbit/s (10^6 bit/s). */
    downlinkMbps: positive,
    uplinkMbps: positive,
    /** One-way latency added to each transfer, in milliseconds. */
    latencyMs: nonnegative.default(0),
    /** Hazard of dropping out while busy with a fit, per hour of simulated time (0 = never). */
    dropoutPerHour: nonnegative.default(0),
    /** Whether the device trains only inside its charging (and idle) window, as production FL does. */
    requiresCharging: z.boolean().default(false),
    /** Fixed UTC offset in hours for every device of this profile; otherwise the availability spread. */
    utcOffsetHours: z.number().min(-12).max(14).optional(),
  })
  .strict();
export type DeviceProfileInput = z.input<typeof deviceProfileSchema>;
export type DeviceProfile = z.output<typeof deviceProfileSchema>;

/** Cross-field checks zod cannot express, one line per problem, naming the field path. */
export function profileProblems(p: DeviceProfile, where: string): string[] {
  const problems: string[] = [];
  const fields = ["speed", "secondsPerExample", "downlinkMbps", "uplinkMbps", "latencyMs", "dropoutPerHour"];
  for (const field of fields) {
    const v = p[field as keyof DeviceProfile] as ProfileValue | undefined;
    if (typeof v !== "object" || v === null) continue;
    const { min, max } = v;
    if (min !== undefined && max !== undefined && min > max) {
      problems.push(`${where}.${field}: min ${min} exceeds max ${max}`);
    }
  }
  return problems;
}

/** Device `index`'s draw of `value` for `purpose`: fixed by the seed, independent across purposes. */
export function drawValue(value: ProfileValue, seed: number, purpose: number, index: number): number {
  if (typeof value === "number") return value;
  const u = unitHash(seed, purpose, index);
  if (value.kind === "uniform") return value.min + (value.max - value.min) * u;
  const x = value.median * Math.exp(value.sigma * normalFrom(u, unitHash(seed, purpose, index, 1)));
  return Math.min(value.max ?? Number.POSITIVE_INFINITY, Math.max(value.min ?? 0, x));
}

/** The median of a profile value (for tables and docs): the number itself, or its distribution's. */
export function medianOf(value: ProfileValue): number {
  if (typeof value === "number") return value;
  if (value.kind === "uniform") return (value.min + value.max) / 2;
  return Math.min(value.max ?? Number.POSITIVE_INFINITY, Math.max(value.min ?? 0, value.median));
}
