import { describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import { Fleet } from "../scenarios/sim/fleet.js";
import { type SimClient, SimulatedTiming } from "../scenarios/sim/virtual-timing.js";
import type { FitTimingInput } from "../server/virtual-timing.js";
import { expectError } from "./helpers/expect-error.js";

const clients = new Map<string, SimClient>(
  Array.from({ length: 50 }, (_, i) => [`client-${i}`, { index: i, examples: 100 + 10 * i }]),
);

const fixed = new Fleet([{ name: "one", speed: 0.5, downlinkMbps: 8, uplinkMbps: 4, latencyMs: 100 }], 1);

const input = (clientId: string, sentAt: number): FitTimingInput => ({
  clientId,
  sentAt,
  bytesDown: 1_000_000,
  bytesUp: 500_000,
  epochs: 2,
});

describe("SimulatedTiming", () => {
  it("a fit arrives after download + compute + upload, from the client's examples and device", () => {
    const timing = new SimulatedTiming({ fleet: fixed, clients, seed: 1, secondsPerExample: 0.01 });
    // client-3: 130 examples. download 0.1 + 8e6/8e6 = 1.1; compute 130·2·0.01/0.5 = 5.2; upload 0.1 + 4e6/4e6 = 1.1.
    const fit = timing.fit(input("client-3", 60));
    expect(fit.arrived).toBe(true);
    expect(fit.at).toBeCloseTo(60 + 1.1 + 5.2 + 1.1, 9);
    // Before training, the upload counts only its latency.
    expect(timing.earliestArrival(input("client-3", 60))).toBeCloseTo(60 + 1.1 + 5.2 + 0.1, 9);
    expect(timing.phases(input("client-3", 60)).compute).toBeCloseTo(5.2, 9);
    expect(timing.isAvailable("client-3", 1e6)).toBe(true);
  });

  it("accepts the client lookup as a function", () => {
    const timing = new SimulatedTiming({
      fleet: fixed,
      clients: (id) => clients.get(id),
      seed: 1,
      secondsPerExample: 0.01,
    });
    expect(timing.fit(input("client-3", 0)).at).toBeCloseTo(7.4, 9);
  });

  it("gives the same answers whatever order the fits are asked in", () => {
    const fleet = new Fleet(
      [
        {
          name: "flaky",
          speed: { kind: "lognormal", median: 0.3, sigma: 0.8 },
          downlinkMbps: { kind: "lognormal", median: 20, sigma: 0.7 },
          uplinkMbps: { kind: "lognormal", median: 6, sigma: 0.7 },
          latencyMs: 50,
          dropoutPerHour: 40,
        },
      ],
      5,
    );
    const make = () => new SimulatedTiming({ fleet, clients, seed: 9, secondsPerExample: 0.02 });
    const queries = Array.from({ length: 200 }, (_, k) => input(`client-${k % 50}`, 30 * Math.floor(k / 50)));
    const forward = make();
    const answers = queries.map((q) => forward.fit(q));
    const backward = make();
    const reversed = [...queries]
      .reverse()
      .map((q) => backward.fit(q))
      .reverse();
    expect(reversed).toEqual(answers);
    // Asking twice changes nothing either.
    expect(queries.map((q) => forward.fit(q))).toEqual(answers);
    // With a 40/hour hazard over fits of tens of seconds, some drop and some arrive.
    const dropped = answers.filter((a) => !a.arrived);
    expect(dropped.length).toBeGreaterThan(0);
    expect(dropped.length).toBeLessThan(answers.length);
    for (const [k, a] of answers.entries()) {
      expect(a.at).toBeGreaterThan(queries[k].sentAt);
      if (!a.arrived) expect(a.reason).toBe("device dropped out");
    }
    // Another seed draws other dropouts.
    const other = new SimulatedTiming({ fleet, clients, seed: 10, secondsPerExample: 0.02 });
    expect(queries.map((q) => other.fit(q))).not.toEqual(answers);
  });

  it("a device that leaves its window mid-fit fails at that moment", () => {
    const timing = new SimulatedTiming({
      fleet: fixed,
      clients,
      seed: 1,
      secondsPerExample: 0.01,
      availability: {
        isAvailable: (_index, at) => at < 100,
        interruptedAt: (_index, from, to) => (to > 100 ? Math.max(from, 100) : undefined),
      },
    });
    expect(timing.isAvailable("client-0", 99)).toBe(true);
    expect(timing.isAvailable("client-0", 100)).toBe(false);
    expect(timing.fit(input("client-0", 10)).arrived).toBe(true);
    expect(timing.fit(input("client-0", 97))).toEqual({
      arrived: false,
      at: 100,
      reason: "device became unavailable",
    });
  });

  it("refuses unknown clients, a bad sentAt, and a fleet that needs a seconds-per-example it was not given", () => {
    const timing = new SimulatedTiming({ fleet: fixed, clients, seed: 1, secondsPerExample: 0.01 });
    expectError(() => timing.fit(input("stranger", 0)), ErrorCode.UNKNOWN_CLIENT, "stranger");
    expectError(() => timing.fit(input("client-1", Number.NaN)), ErrorCode.INVALID_CONFIG, "sentAt");
    expectError(
      () => new SimulatedTiming({ fleet: fixed, clients, seed: 1 }),
      ErrorCode.INVALID_CONFIG,
      "secondsPerExample is required",
      "one",
    );
    const own = new Fleet([{ name: "own", secondsPerExample: 0.05, downlinkMbps: 1, uplinkMbps: 1 }], 1);
    // 100 examples · 2 epochs · 0.05 = 10 s of compute, plus 8 s down and 4 s up at 1 Mbit/s.
    expect(new SimulatedTiming({ fleet: own, clients, seed: 1 }).fit(input("client-0", 0)).at).toBeCloseTo(
      22,
      9,
    );
  });
});
