import { z } from "zod";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import type { Device } from "./fleet.js";
import { normalFrom, Purpose, unitHash } from "./seeded-hash.js";
import type { AvailabilitySource } from "./virtual-timing.js";

/**
 * Which devices may train when, on the simulated clock. A device is available when
 *   - no scripted outage covers it,
 *   - it is online in the current local hour (a coin per client and hour, `hourlyOnline`), and
 *   - if it requires charging, the current local time falls in one of its charging windows: a
 *     nightly one, and on some days a shorter daytime one. A window stands for "idle, charging and
 *     on an unmetered network", the eligibility rule of production FL.
 * Local time is simulated time shifted by the run's start hour and the device's UTC offset,
 * drawn from `timeZones` (or fixed by its profile). Every answer is a pure function of (seed,
 * client index, time): no per-client state, O(1) per query.
 */
const probability = z.number().min(0).max(1);
const hour = z.number().min(0).max(24);

/**
 * The defaults are fedsim's choice, calibrated so that devices in one time zone show about the
 * 4× swing between the fewest and the most eligible devices over a day that Bonawitz et al.
 * (2019) report for a US-centric population (docs/SCENARIOS.md).
 */
export const chargingSchema = z
  .object({
    /** Mean local hour (0–24, may be past 24 for after midnight) at which the nightly window opens. */
    nightStartHour: z.number().min(12).lt(36).default(22),
    /** Standard deviation of that start, hours (drawn per client and night). */
    nightStartSpreadHours: z.number().nonnegative().max(6).default(2),
    /** Mean length of the nightly window, hours, and its standard deviation. */
    nightHours: z.number().positive().max(12).default(8),
    nightHoursSpread: z.number().nonnegative().max(6).default(2),
    /** Chance that a device charges on a given night. */
    nightChance: probability.default(0.95),
    /** Chance of a daytime window on a given day; it opens uniformly in [dayFromHour, dayToHour). */
    dayChance: probability.default(0.9),
    dayFromHour: hour.default(7.5),
    dayToHour: hour.default(20.5),
    dayHours: z.number().positive().max(12).default(4),
  })
  .strict();

export const outageSchema = z
  .object({
    /** Simulated seconds since the run began: [from, to). */
    from: z.number().nonnegative().finite(),
    to: z.number().positive(),
    /** Share of clients it takes offline, drawn per client and outage (1 = everyone). */
    fraction: probability.default(1),
  })
  .strict();

export const availabilityClockSchema = z
  .object({
    /** UTC hour of day at simulated time 0. */
    startUtcHour: z.number().min(0).lt(24).default(0),
    /** UTC offsets (hours) the fleet is spread over, with relative weights (equal when absent). */
    timeZones: z
      .object({
        offsetsHours: z.array(z.number().min(-12).max(14)).min(1),
        weights: z.array(z.number().positive().finite()).optional(),
      })
      .strict()
      .default({ offsetsHours: [0] }),
    /** P(online) for each local hour 0..23; absent: always online. */
    hourlyOnline: z.array(probability).length(24).optional(),
    charging: chargingSchema.default(chargingSchema.parse({})),
    outages: z.array(outageSchema).default([]),
  })
  .strict();
export type AvailabilityClockInput = z.input<typeof availabilityClockSchema>;
export type AvailabilityClockOptions = z.output<typeof availabilityClockSchema>;

const HOUR = 3600;
const DAY = 86400;
/** Bounds the boundary walks; far more steps than any fit or look-ahead horizon needs. */
const MAX_STEPS = 100_000;

interface Window {
  start: number;
  end: number;
}

export class AvailabilityClock implements AvailabilitySource {
  readonly options: AvailabilityClockOptions;
  private readonly zoneCumulative: Float64Array;

  constructor(
    input: AvailabilityClockInput,
    private readonly seed: number,
  ) {
    const parsed = availabilityClockSchema.safeParse(input);
    if (!parsed.success) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        "invalid availability clock",
        parsed.error.issues.map((i) => `availability.${i.path.join(".")}: ${i.message}`),
      );
    }
    const o = parsed.data;
    const problems: string[] = [];
    const { offsetsHours, weights } = o.timeZones;
    if (weights && weights.length !== offsetsHours.length) {
      problems.push(
        `availability.timeZones.weights: ${weights.length} weights for ${offsetsHours.length} offsets`,
      );
    }
    if (o.charging.dayFromHour > o.charging.dayToHour) {
      problems.push(
        `availability.charging.dayFromHour: ${o.charging.dayFromHour} is after dayToHour (${o.charging.dayToHour})`,
      );
    }
    o.outages.forEach((outage, i) => {
      if (outage.to <= outage.from) {
        problems.push(`availability.outages.${i}.to: ${outage.to} is not after from (${outage.from})`);
      }
    });
    if (problems.length > 0)
      throw new FedsimError(ErrorCode.INVALID_CONFIG, "invalid availability clock", problems);
    this.options = o;
    const w = weights ?? offsetsHours.map(() => 1);
    const total = w.reduce((a, b) => a + b, 0);
    this.zoneCumulative = new Float64Array(w.length);
    let running = 0;
    w.forEach((x, i) => {
      running += x;
      this.zoneCumulative[i] = running / total;
    });
    this.zoneCumulative[w.length - 1] = 1;
  }

  /** The client's UTC offset in hours: its profile's, or a seeded draw from `timeZones`. */
  utcOffsetHours(index: number, device?: Pick<Device, "utcOffsetHours">): number {
    if (device?.utcOffsetHours !== undefined) return device.utcOffsetHours;
    const offsets = this.options.timeZones.offsetsHours;
    if (offsets.length === 1) return offsets[0];
    const u = unitHash(this.seed, Purpose.TIMEZONE, index);
    let zone = 0;
    while (u >= this.zoneCumulative[zone]) zone++;
    return offsets[zone];
  }

  /** Local seconds since local midnight of day 0 (may be negative west of UTC at the start). */
  localTime(index: number, at: number, device?: Pick<Device, "utcOffsetHours">): number {
    return at + (this.options.startUtcHour + this.utcOffsetHours(index, device)) * HOUR;
  }

  isAvailable(
    index: number,
    at: number,
    device: Pick<Device, "requiresCharging" | "utcOffsetHours">,
  ): boolean {
    checkTime(at);
    if (this.inOutage(index, at)) return false;
    const local = this.localTime(index, at, device);
    if (!this.onlineInHour(index, local)) return false;
    return !device.requiresCharging || this.charging(index, local);
  }

  interruptedAt(
    index: number,
    from: number,
    to: number,
    device: Pick<Device, "requiresCharging" | "utcOffsetHours">,
  ): number | undefined {
    return this.firstWhere(index, from, to, device, false);
  }

  /** The first moment at or after `from` (and before `from + horizonSeconds`) the client is available. */
  nextAvailable(
    index: number,
    from: number,
    device: Pick<Device, "requiresCharging" | "utcOffsetHours">,
    horizonSeconds = 7 * DAY,
  ): number | undefined {
    return this.firstWhere(index, from, from + horizonSeconds, device, true);
  }

  /** Whether a scripted outage covers the client at `at`. */
  inOutage(index: number, at: number): boolean {
    const outages = this.options.outages;
    for (let i = 0; i < outages.length; i++) {
      const o = outages[i];
      if (at >= o.from && at < o.to && this.outageHits(i, index)) return true;
    }
    return false;
  }

  private outageHits(outage: number, index: number): boolean {
    const fraction = this.options.outages[outage].fraction;
    return fraction >= 1 || unitHash(this.seed, Purpose.OUTAGE, outage, index) < fraction;
  }

  private onlineInHour(index: number, local: number): boolean {
    const hourly = this.options.hourlyOnline;
    if (!hourly) return true;
    const slot = Math.floor(local / HOUR);
    const p = hourly[((slot % 24) + 24) % 24];
    return p >= 1 || unitHash(this.seed, Purpose.DIURNAL, index, slot) < p;
  }

  private charging(index: number, local: number): boolean {
    // A night's window opens at or after noon of its night and lasts at most 12 h, so only the
    // night whose noon most recently passed and the one before can cover `local`; likewise a
    // daytime window ends within a day of its day's midnight.
    const night = Math.floor((local - 12 * HOUR) / DAY);
    const day = Math.floor(local / DAY);
    return (
      covers(this.nightWindow(index, night), local) ||
      covers(this.dayWindow(index, day), local) ||
      covers(this.nightWindow(index, night - 1), local) ||
      covers(this.dayWindow(index, day - 1), local)
    );
  }

  /** The charging windows (local seconds) near `local`, and the next ones after them. */
  private windowsAround(index: number, local: number): Window[] {
    const night = Math.floor((local - 12 * HOUR) / DAY);
    const day = Math.floor(local / DAY);
    const windows: (Window | undefined)[] = [];
    for (let k = -1; k <= 1; k++)
      windows.push(this.nightWindow(index, night + k), this.dayWindow(index, day + k));
    return windows.filter((w): w is Window => w !== undefined);
  }

  /** Night `night`'s charging window, opening after noon of local day `night`; undefined if none. */
  private nightWindow(index: number, night: number): Window | undefined {
    const c = this.options.charging;
    if (unitHash(this.seed, Purpose.CHARGING_START, index, night, 0) >= c.nightChance) return undefined;
    const startNoise = normalFrom(
      unitHash(this.seed, Purpose.CHARGING_START, index, night, 1),
      unitHash(this.seed, Purpose.CHARGING_START, index, night, 2),
    );
    const lengthNoise = normalFrom(
      unitHash(this.seed, Purpose.CHARGING_LENGTH, index, night, 1),
      unitHash(this.seed, Purpose.CHARGING_LENGTH, index, night, 2),
    );
    const afterNoon = clamp(c.nightStartHour - 12 + c.nightStartSpreadHours * startNoise, 0, 23.99);
    const hours = clamp(c.nightHours + c.nightHoursSpread * lengthNoise, 0.25, 12);
    const start = night * DAY + (12 + afterNoon) * HOUR;
    return { start, end: start + hours * HOUR };
  }

  /** Day `day`'s daytime charging window, if the device has one that day. */
  private dayWindow(index: number, day: number): Window | undefined {
    const c = this.options.charging;
    if (unitHash(this.seed, Purpose.CHARGING_START, index, day, 3) >= c.dayChance) return undefined;
    const u = unitHash(this.seed, Purpose.CHARGING_START, index, day, 4);
    const start = day * DAY + (c.dayFromHour + (c.dayToHour - c.dayFromHour) * u) * HOUR;
    return { start, end: start + c.dayHours * HOUR };
  }

  /**
   * The first time in [from, to) at which availability equals `wanted`. Availability is piecewise
   * constant between the boundaries nextBoundary lists, so only those need checking.
   */
  private firstWhere(
    index: number,
    from: number,
    to: number,
    device: Pick<Device, "requiresCharging" | "utcOffsetHours">,
    wanted: boolean,
  ): number | undefined {
    checkTime(from);
    let t = from;
    for (let step = 0; step < MAX_STEPS && t < to; step++) {
      if (this.isAvailable(index, t, device) === wanted) return t;
      t = this.nextBoundary(index, t, device);
    }
    return undefined;
  }

  /** The next moment after `at` at which the client's availability may change. */
  private nextBoundary(
    index: number,
    at: number,
    device: Pick<Device, "requiresCharging" | "utcOffsetHours">,
  ) {
    const shift = this.localTime(index, at, device) - at;
    const local = at + shift;
    // The next local noon always qualifies, so the walk moves on even with nothing else scheduled.
    let next = (Math.floor((local - 12 * HOUR) / DAY) + 1) * DAY + 12 * HOUR;
    if (this.options.hourlyOnline) next = Math.min(next, (Math.floor(local / HOUR) + 1) * HOUR);
    if (device.requiresCharging) {
      for (const w of this.windowsAround(index, local)) {
        if (w.start > local) next = Math.min(next, w.start);
        if (w.end > local) next = Math.min(next, w.end);
      }
    }
    let nextSim = next - shift;
    this.options.outages.forEach((o, i) => {
      if (!this.outageHits(i, index)) return;
      if (o.from > at) nextSim = Math.min(nextSim, o.from);
      if (o.to > at) nextSim = Math.min(nextSim, o.to);
    });
    // Rounding in the shift must never stall the walk.
    return nextSim > at ? nextSim : at + 1e-6;
  }
}

function covers(w: Window | undefined, local: number): boolean {
  return w !== undefined && local >= w.start && local < w.end;
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

function checkTime(at: number): void {
  if (!Number.isFinite(at)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `simulated time must be finite, got ${at}`);
  }
}
