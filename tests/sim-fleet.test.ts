import { describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import { DEFAULT_PHONE_FLEET, defaultPhoneFleet } from "../scenarios/sim/default-fleet.js";
import { Fleet } from "../scenarios/sim/fleet.js";
import { expectError } from "./helpers/expect-error.js";

const tiers = [
  { name: "low", share: 0.5, speed: 0.25, downlinkMbps: 10, uplinkMbps: 2 },
  { name: "mid", share: 0.3, speed: 0.5, downlinkMbps: 30, uplinkMbps: 8 },
  { name: "high", share: 0.2, speed: 1, downlinkMbps: 80, uplinkMbps: 15, requiresCharging: true },
];

describe("fleet assignment", () => {
  it("gives 100,000 clients tiers in the stated shares, the same for the same seed", () => {
    const n = 100_000;
    const counts = new Fleet(tiers, 7).tierCounts(n);
    expect(new Fleet(tiers, 7).tierCounts(n)).toEqual(counts);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(n);
    // Binomial sd at n = 1e5 is under 0.0016; 0.01 is more than six of them.
    counts.forEach((count, tier) => {
      expect(Math.abs(count / n - tiers[tier].share)).toBeLessThan(0.01);
    });
    // Another seed assigns the same shares to different clients.
    const a = new Fleet(tiers, 7);
    const b = new Fleet(tiers, 8);
    const differ = Array.from({ length: 1000 }, (_, i) => a.tierOf(i) !== b.tierOf(i)).filter(Boolean).length;
    expect(differ).toBeGreaterThan(300);
  });

  it("draws each device's numbers from its tier, fixed per client", () => {
    const fleet = new Fleet(tiers, 3);
    for (let i = 0; i < 200; i++) {
      const d = fleet.device(i);
      expect(d).toEqual(fleet.device(i));
      expect(d.tierName).toBe(tiers[d.tier].name);
      expect(d.speed).toBe(tiers[d.tier].speed);
      expect(d.requiresCharging).toBe(d.tierName === "high");
      expect(d.latencyMs).toBe(0);
      expect(d.dropoutPerHour).toBe(0);
    }
  });

  it("log-normal values have the stated median and stay within their bounds", () => {
    const fleet = new Fleet(
      [
        {
          name: "phones",
          speed: { kind: "lognormal", median: 0.4, sigma: 0.6, min: 0.05, max: 2 },
          downlinkMbps: { kind: "uniform", min: 5, max: 50 },
          uplinkMbps: 5,
        },
      ],
      11,
    );
    const speeds = Array.from({ length: 20_001 }, (_, i) => fleet.device(i).speed).sort((a, b) => a - b);
    expect(speeds[0]).toBeGreaterThanOrEqual(0.05);
    expect(speeds[speeds.length - 1]).toBeLessThanOrEqual(2);
    // The sample median of 20,001 log-normal draws is within a few percent of the true median.
    expect(Math.abs(speeds[10_000] / 0.4 - 1)).toBeLessThan(0.05);
    const links = Array.from({ length: 1000 }, (_, i) => fleet.device(i).downlinkMbps);
    expect(Math.min(...links)).toBeGreaterThanOrEqual(5);
    expect(Math.max(...links)).toBeLessThanOrEqual(50);
    // Speed and link draws are independent purposes: not the same ranking.
    expect(fleet.device(1).speed / 0.4).not.toBeCloseTo(fleet.device(1).downlinkMbps / 27.5, 3);
  });

  it("profiles without shares split the fleet equally", () => {
    const fleet = new Fleet(
      tiers.map(({ share: _share, ...rest }) => rest),
      1,
    );
    expect(fleet.shares().map((s) => Number(s.toFixed(12)))).toEqual(
      [1 / 3, 1 / 3, 1 / 3].map((s) => Number(s.toFixed(12))),
    );
  });

  it("refuses a broken fleet, one line per field", () => {
    expectError(() => new Fleet([], 1), ErrorCode.INVALID_CONFIG, "1 to 255 profiles");
    try {
      new Fleet(
        [
          { name: "a", share: 1, downlinkMbps: -1, uplinkMbps: 1 },
          { name: "b", downlinkMbps: 1, uplinkMbps: 1, speed: { kind: "uniform", min: 2, max: 1 } },
        ],
        1,
      );
      expect.unreachable();
    } catch (err) {
      const details = (err as { details: string[] }).details;
      expect(details.some((d) => d.startsWith("profiles.0.downlinkMbps"))).toBe(true);
      expect(details).toContain("profiles.1.speed: min 2 exceeds max 1");
      expect(details.some((d) => d.includes("give every profile a share"))).toBe(true);
    }
  });
});

describe("default phone fleet", () => {
  it("splits 100,000 phones into thirds whose speeds have the tiers' medians and stay in their ranges", () => {
    const n = 100_000;
    const fleet = defaultPhoneFleet(1);
    const speeds: number[][] = [[], [], []];
    const downlinks: number[] = [];
    for (let i = 0; i < n; i++) {
      const d = fleet.device(i);
      speeds[d.tier].push(d.speed);
      if (i < 20_001) downlinks.push(d.downlinkMbps);
      if (!d.requiresCharging) throw new Error(`phone ${i} does not require charging`);
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    speeds.forEach((tier, t) => {
      expect(Math.abs(tier.length / n - 1 / 3)).toBeLessThan(0.01);
      const spec = DEFAULT_PHONE_FLEET[t].speed as { median: number; min: number; max: number };
      expect(Math.abs(median(tier) / spec.median - 1)).toBeLessThan(0.05);
      expect(Math.min(...tier)).toBeGreaterThanOrEqual(spec.min);
      expect(Math.max(...tier)).toBeLessThanOrEqual(spec.max);
    });
    // Ookla's global mobile download figure is the median of the drawn downlinks.
    expect(Math.abs(median(downlinks) / 35.96 - 1)).toBeLessThan(0.05);
    expect(defaultPhoneFleet(1).tierCounts(n)).toEqual(speeds.map((s) => s.length));
  });
});
