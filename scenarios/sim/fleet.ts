import { ErrorCode, FedsimError } from "../../common/errors.js";
import {
  type DeviceProfile,
  type DeviceProfileInput,
  deviceProfileSchema,
  drawValue,
  profileProblems,
} from "./device-profiles.js";
import { Purpose, unitHash } from "./seeded-hash.js";

/** One client's device, with every distribution drawn. */
export interface Device {
  /** Index of its profile in the fleet, and that profile's name. */
  tier: number;
  tierName: string;
  speed: number;
  /** The device's own cost per example and epoch (seconds), when its profile sets one. */
  secondsPerExample: number | undefined;
  downlinkMbps: number;
  uplinkMbps: number;
  latencyMs: number;
  dropoutPerHour: number;
  requiresCharging: boolean;
  utcOffsetHours: number | undefined;
}

/**
 * A seeded assignment of device profiles to clients. Nothing is stored per client: a client's
 * tier and its draws are pure functions of (seed, client index), computed when asked, so a fleet
 * of 100,000 clients costs no more memory than one of ten, and any process that knows the seed
 * agrees on every device.
 */
export class Fleet {
  readonly profiles: readonly DeviceProfile[];
  /** Cumulative normalised shares; the last is exactly 1. */
  private readonly cumulative: Float64Array;

  constructor(
    profiles: readonly DeviceProfileInput[],
    readonly seed: number,
  ) {
    if (profiles.length === 0 || profiles.length > 255) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `a fleet needs 1 to 255 profiles, got ${profiles.length}`,
      );
    }
    const problems: string[] = [];
    const parsed: DeviceProfile[] = [];
    profiles.forEach((raw, i) => {
      const result = deviceProfileSchema.safeParse(raw);
      if (!result.success) {
        for (const issue of result.error.issues) {
          problems.push(`profiles.${[i, ...issue.path].join(".")}: ${issue.message}`);
        }
        return;
      }
      problems.push(...profileProblems(result.data, `profiles.${i}`));
      parsed.push(result.data);
    });
    const withShare = profiles.filter((p) => p.share !== undefined).length;
    if (withShare !== 0 && withShare !== profiles.length) {
      problems.push("profiles: give every profile a share, or none (equal shares)");
    }
    if (problems.length > 0)
      throw new FedsimError(ErrorCode.INVALID_CONFIG, "invalid device fleet", problems);
    this.profiles = parsed;
    const total = parsed.reduce((sum, p) => sum + (p.share ?? 1), 0);
    this.cumulative = new Float64Array(parsed.length);
    let running = 0;
    parsed.forEach((p, i) => {
      running += p.share ?? 1;
      this.cumulative[i] = running / total;
    });
    this.cumulative[parsed.length - 1] = 1;
  }

  /** Whether some profile leaves seconds-per-example to the run (measured or pinned). */
  get needsSecondsPerExample(): boolean {
    return this.profiles.some((p) => p.secondsPerExample === undefined);
  }

  /** The normalised share of each profile. */
  shares(): number[] {
    return Array.from(this.cumulative, (c, i) => c - (i > 0 ? this.cumulative[i - 1] : 0));
  }

  tierOf(index: number): number {
    checkIndex(index);
    if (this.cumulative.length === 1) return 0;
    const u = unitHash(this.seed, Purpose.TIER, index);
    // Few tiers: a linear scan beats a binary search.
    let tier = 0;
    while (u >= this.cumulative[tier]) tier++;
    return tier;
  }

  device(index: number): Device {
    const tier = this.tierOf(index);
    const p = this.profiles[tier];
    const draw = (value: Parameters<typeof drawValue>[0], purpose: number) =>
      drawValue(value, this.seed, purpose, index);
    return {
      tier,
      tierName: p.name,
      speed: p.speed === undefined ? 1 : draw(p.speed, Purpose.SPEED),
      secondsPerExample:
        p.secondsPerExample === undefined
          ? undefined
          : draw(p.secondsPerExample, Purpose.SECONDS_PER_EXAMPLE),
      downlinkMbps: draw(p.downlinkMbps, Purpose.DOWNLINK),
      uplinkMbps: draw(p.uplinkMbps, Purpose.UPLINK),
      latencyMs: draw(p.latencyMs, Purpose.LATENCY),
      dropoutPerHour: draw(p.dropoutPerHour, Purpose.DROPOUT_HAZARD),
      requiresCharging: p.requiresCharging,
      utcOffsetHours: p.utcOffsetHours,
    };
  }

  /** How many of clients 0..n−1 fall in each tier (for reports). */
  tierCounts(n: number): number[] {
    const counts = new Array<number>(this.profiles.length).fill(0);
    for (let i = 0; i < n; i++) counts[this.tierOf(i)]++;
    return counts;
  }
}

function checkIndex(index: number): void {
  if (!Number.isInteger(index) || index < 0) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `client index must be an integer ≥ 0, got ${index}`);
  }
}
