import { describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import { AvailabilityClock } from "../scenarios/sim/availability-clock.js";
import { Fleet } from "../scenarios/sim/fleet.js";
import { SimulatedTiming } from "../scenarios/sim/virtual-timing.js";
import { expectError } from "./helpers/expect-error.js";

const HOUR = 3600;
const DAY = 86400;
const charging = { requiresCharging: true, utcOffsetHours: undefined };
const anytime = { requiresCharging: false, utcOffsetHours: undefined };

/** Share of clients 0..n−1 available at simulated time `at`. */
function share(clock: AvailabilityClock, at: number, n: number, device = charging): number {
  let available = 0;
  for (let i = 0; i < n; i++) if (clock.isAvailable(i, at, device)) available++;
  return available / n;
}

/** Share available at the middle of each hour 0..23 of day 2. */
function hourly(clock: AvailabilityClock, n: number): number[] {
  return Array.from({ length: 24 }, (_, h) => share(clock, 2 * DAY + h * HOUR + HOUR / 2, n));
}

describe("availability clock: charging windows", () => {
  it("devices that need charging are mostly available at local night, few in the day, about 4× apart", () => {
    const curve = hourly(new AvailabilityClock({}, 3), 10_000);
    expect(curve[2]).toBeGreaterThan(0.7);
    expect(curve[14]).toBeLessThan(0.4);
    const ratio = Math.max(...curve) / Math.min(...curve);
    expect(ratio).toBeGreaterThan(3);
    expect(ratio).toBeLessThan(5);
  });

  it("devices that need no charging are always available when nothing else is configured", () => {
    const clock = new AvailabilityClock({}, 3);
    for (const at of [0, 5 * HOUR, 14 * HOUR, 3 * DAY + 1]) expect(share(clock, at, 500, anytime)).toBe(1);
  });

  it("a run that starts at another UTC hour shifts the curve", () => {
    const night = hourly(new AvailabilityClock({}, 3), 4000);
    const shifted = hourly(new AvailabilityClock({ startUtcHour: 12 }, 3), 4000);
    // Simulated hour h of the shifted run is local hour h + 12.
    expect(shifted[14]).toBeCloseTo(night[2], 1);
    expect(shifted[2]).toBeCloseTo(night[14], 1);
  });
});

describe("availability clock: time zones", () => {
  it("spreads clients over the offsets by weight, seeded, and flattens the daily swing", () => {
    const clock = new AvailabilityClock({ timeZones: { offsetsHours: [0, 12], weights: [3, 1] } }, 5);
    const n = 20_000;
    const east = Array.from({ length: n }, (_, i) => clock.utcOffsetHours(i)).filter((o) => o === 12).length;
    expect(Math.abs(east / n - 0.25)).toBeLessThan(0.02);
    expect(
      new AvailabilityClock({ timeZones: { offsetsHours: [0, 12], weights: [3, 1] } }, 5).utcOffsetHours(77),
    ).toBe(clock.utcOffsetHours(77));
    const single = hourly(new AvailabilityClock({}, 5), 4000);
    const spread = hourly(new AvailabilityClock({ timeZones: { offsetsHours: [0, 12] } }, 5), 4000);
    const swing = (c: number[]) => Math.max(...c) / Math.min(...c);
    expect(swing(spread)).toBeLessThan(swing(single) / 2);
  });

  it("a profile's own UTC offset wins over the spread", () => {
    const clock = new AvailabilityClock({ timeZones: { offsetsHours: [-5, 1, 8] } }, 5);
    expect(clock.utcOffsetHours(3, { utcOffsetHours: 5.5 })).toBe(5.5);
    expect(clock.localTime(3, 0, { utcOffsetHours: 5.5 })).toBe(5.5 * HOUR);
  });
});

describe("availability clock: hourly online curve", () => {
  it("follows the probability of each local hour", () => {
    const hourlyOnline = Array.from({ length: 24 }, (_, h) => (h < 6 ? 0 : h < 12 ? 0.5 : 1));
    const clock = new AvailabilityClock({ hourlyOnline }, 9);
    expect(share(clock, DAY + 3 * HOUR, 2000, anytime)).toBe(0);
    expect(share(clock, DAY + 15 * HOUR, 2000, anytime)).toBe(1);
    expect(Math.abs(share(clock, DAY + 9 * HOUR, 20_000, anytime) - 0.5)).toBeLessThan(0.02);
  });
});

describe("availability clock: outages", () => {
  it("a global outage takes everyone offline for [from, to)", () => {
    const clock = new AvailabilityClock({ outages: [{ from: 1000, to: 2000 }] }, 1);
    expect(share(clock, 999, 300, anytime)).toBe(1);
    expect(share(clock, 1000, 300, anytime)).toBe(0);
    expect(share(clock, 1999, 300, anytime)).toBe(0);
    expect(share(clock, 2000, 300, anytime)).toBe(1);
    expect(clock.interruptedAt(4, 500, 1500, anytime)).toBe(1000);
    expect(clock.interruptedAt(4, 2000, 5000, anytime)).toBeUndefined();
    expect(clock.nextAvailable(4, 1200, anytime)).toBe(2000);
  });

  it("a partial outage hits a seeded fraction of clients, the same ones throughout", () => {
    const clock = new AvailabilityClock({ outages: [{ from: 0, to: 10 * HOUR, fraction: 0.3 }] }, 1);
    const n = 20_000;
    expect(Math.abs(1 - share(clock, HOUR, n, anytime) - 0.3)).toBeLessThan(0.02);
    for (let i = 0; i < 200; i++)
      expect(clock.isAvailable(i, 9 * HOUR, anytime)).toBe(clock.isAvailable(i, HOUR, anytime));
  });
});

describe("availability clock: boundary walks", () => {
  /** Brute force: the first minute in [from, to) where availability equals `wanted`. */
  function scan(clock: AvailabilityClock, i: number, from: number, to: number, wanted: boolean) {
    for (let t = from; t < to; t += 60) if (clock.isAvailable(i, t, charging) === wanted) return t;
    return undefined;
  }

  it("nextAvailable and interruptedAt agree with a minute-by-minute scan", () => {
    const clock = new AvailabilityClock(
      {
        timeZones: { offsetsHours: [-7, 0, 5.5] },
        outages: [{ from: 30 * HOUR, to: 33 * HOUR, fraction: 0.5 }],
      },
      21,
    );
    for (let i = 0; i < 40; i++) {
      const from = DAY + i * 1234;
      const next = clock.nextAvailable(i, from, charging)!;
      expect(clock.isAvailable(i, next, charging)).toBe(true);
      const scanned = scan(clock, i, from, from + 3 * DAY, true)!;
      // The exact boundary is at most one scan step before the scan's first hit.
      expect(next).toBeLessThanOrEqual(scanned);
      expect(scanned - next).toBeLessThan(60);
      const end = clock.interruptedAt(i, next, next + 2 * DAY, charging)!;
      expect(clock.isAvailable(i, end, charging)).toBe(false);
      expect(clock.isAvailable(i, (next + end) / 2, charging)).toBe(true);
    }
  });
});

describe("availability clock and SimulatedTiming", () => {
  it("a fit that outlasts the device's charging window fails when the window closes", () => {
    const clock = new AvailabilityClock({}, 2);
    const fleet = new Fleet([{ name: "p", downlinkMbps: 10, uplinkMbps: 10, requiresCharging: true }], 2);
    const clients = new Map([["c", { index: 0, examples: 1000 }]]);
    const timing = new SimulatedTiming({
      fleet,
      clients,
      seed: 2,
      secondsPerExample: 1,
      availability: clock,
    });
    const start = clock.nextAvailable(0, DAY, charging)!;
    const closes = clock.interruptedAt(0, start, start + DAY, charging)!;
    const input = { clientId: "c", sentAt: start, bytesDown: 0, bytesUp: 0, epochs: 100 };
    // 1000 examples · 100 epochs · 1 s: far longer than any window.
    expect(timing.isAvailable("c", start)).toBe(true);
    expect(timing.fit(input)).toEqual({ arrived: false, at: closes, reason: "device became unavailable" });
    expect(timing.fit({ ...input, epochs: 0 }).arrived).toBe(true);
  });
});

describe("availability clock: bad configuration", () => {
  it("names each bad field", () => {
    try {
      new AvailabilityClock(
        {
          timeZones: { offsetsHours: [0, 3], weights: [1] },
          outages: [{ from: 10, to: 5 }],
          charging: { dayFromHour: 20, dayToHour: 8 },
        },
        1,
      );
      expect.unreachable();
    } catch (err) {
      const details = (err as { details: string[] }).details;
      expect(details).toContain("availability.timeZones.weights: 1 weights for 2 offsets");
      expect(details).toContain("availability.outages.0.to: 5 is not after from (10)");
      expect(details.some((d) => d.startsWith("availability.charging.dayFromHour"))).toBe(true);
    }
    expectError(
      () => new AvailabilityClock({ hourlyOnline: [1, 2] }, 1),
      ErrorCode.INVALID_CONFIG,
      "availability",
    );
    expectError(
      () => new AvailabilityClock({}, 1).isAvailable(0, Number.NaN, anytime),
      ErrorCode.INVALID_CONFIG,
    );
  });
});
