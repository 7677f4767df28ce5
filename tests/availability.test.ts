import { describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import {
  type Availability,
  AvailabilityModel,
  availabilitySchema,
  onlineClients,
} from "../scenarios/sim/availability.js";
import { expectError } from "./helpers/expect-error.js";

const availability = (raw: unknown): Availability => availabilitySchema.parse(raw);
const sorted = (set: Set<number>) => [...set].sort((a, b) => a - b);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("availability patterns", () => {
  const diurnal = (phaseSpread: number) =>
    availability({
      pattern: { kind: "diurnal", periodRounds: 12, minOnline: 0.2, maxOnline: 0.9, phaseSpread },
    });
  /** The pattern's probability for a client of phase 0 in round r. */
  const cosine = (r: number) => 0.2 + 0.7 * ((1 + Math.cos((2 * Math.PI * (r - 1)) / 12)) / 2);

  it("always: every client is online in every round", () => {
    const scenario = { seed: 1, clients: 20, availability: availability({}) };
    expect(availability({}).pattern).toEqual({ kind: "always" });
    for (const round of [1, 7, 100]) expect(onlineClients(scenario, round).size).toBe(20);
    expect(onlineClients({ seed: 1, clients: 3 }, 4)).toEqual(new Set([0, 1, 2]));
  });

  it("the same seed gives the same online sets; another seed gives others", () => {
    const a = diurnal(1);
    const sets = (seed: number) =>
      range(1, 6).map((r) => sorted(onlineClients({ seed, clients: 200, availability: a }, r)));
    expect(sets(4)).toEqual(sets(4));
    expect(sets(5)).not.toEqual(sets(4));
    // Members change from round to round.
    expect(sets(4)[0]).not.toEqual(sets(4)[1]);
  });

  it("in step (phaseSpread 0), the online fraction follows the cosine over a period", () => {
    const model = new AvailabilityModel({ seed: 3, clients: 2000, availability: diurnal(0) });
    for (const round of range(1, 13)) {
      const fraction = model.onlineClients(round).size / 2000;
      expect(Math.abs(fraction - cosine(round))).toBeLessThan(0.04);
    }
    // Peak in round 1, trough half a period later.
    expect(model.onlineClients(1).size).toBeGreaterThan(1700);
    expect(model.onlineClients(7).size).toBeLessThan(500);
  });

  it("spread over the period (phaseSpread 1), the fraction holds near the middle", () => {
    const model = new AvailabilityModel({ seed: 3, clients: 2000, availability: diurnal(1) });
    for (const round of [1, 4, 7, 10]) {
      expect(Math.abs(model.onlineClients(round).size / 2000 - 0.55)).toBeLessThan(0.04);
    }
  });

  it("each client's probability is the cosine shifted by its own phase", () => {
    const model = new AvailabilityModel({ seed: 9, clients: 50, availability: diurnal(1) });
    for (const client of [0, 17, 49]) {
      const p = range(1, 12).map((r) => model.onlineProbability(client, r));
      expect(Math.min(...p)).toBeGreaterThanOrEqual(0.2 - 1e-12);
      expect(Math.max(...p)).toBeLessThanOrEqual(0.9 + 1e-12);
      // One period later it repeats.
      expect(model.onlineProbability(client, 13)).toBeCloseTo(p[0], 9);
    }
    const phases = [0, 1, 2].map((c) => model.onlineProbability(c, 1));
    expect(new Set(phases).size).toBe(3);
    const inStep = new AvailabilityModel({ seed: 9, clients: 50, availability: diurnal(0) });
    for (const r of range(1, 12)) expect(inStep.onlineProbability(31, r)).toBeCloseTo(cosine(r), 12);
  });
});

describe("availability schedules", () => {
  it("takes listed clients offline from `from` through `to`, back for the round after", () => {
    const a = availability({ schedule: [{ clients: [0, 1, 2], offline: { from: 3, to: 5 } }] });
    const online = (round: number) => sorted(onlineClients({ seed: 1, clients: 6, availability: a }, round));
    expect(online(2)).toEqual([0, 1, 2, 3, 4, 5]);
    for (const round of [3, 4, 5]) expect(online(round)).toEqual([3, 4, 5]);
    expect(online(6)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("a seeded fraction leaves for good: exactly that many, the same ones each run", () => {
    const a = availability({ schedule: [{ clients: { fraction: 0.3 }, offline: { from: 5 } }] });
    const scenario = { seed: 12, clients: 100, availability: a };
    expect(onlineClients(scenario, 4).size).toBe(100);
    const gone = range(0, 99).filter((c) => !onlineClients(scenario, 5).has(c));
    expect(gone).toHaveLength(30);
    for (const round of [6, 50, 1000])
      expect(sorted(onlineClients(scenario, round))).toEqual(range(0, 99).filter((c) => !gone.includes(c)));
    expect(onlineClients({ ...scenario, seed: 13 }, 5)).not.toEqual(onlineClients(scenario, 5));
  });

  it("two drawn entries pick different clients; a count is exact", () => {
    const a = availability({
      schedule: [
        { clients: { count: 10 }, offline: { from: 2, to: 2 } },
        { clients: { count: 10 }, offline: { from: 3, to: 3 } },
      ],
    });
    const model = new AvailabilityModel({ seed: 2, clients: 40, availability: a });
    const offlineIn = (round: number) => range(0, 39).filter((c) => !model.isOnline(c, round));
    expect(offlineIn(2)).toHaveLength(10);
    expect(offlineIn(3)).toHaveLength(10);
    expect(offlineIn(2)).not.toEqual(offlineIn(3));
    expect(offlineIn(4)).toEqual([]);
  });

  it("the schedule overrides the pattern: a scheduled client is offline whatever its coin", () => {
    const a = availability({
      pattern: { kind: "diurnal", periodRounds: 4, minOnline: 1, maxOnline: 1 },
      schedule: [{ clients: [3], offline: { from: 1, to: 2 } }],
    });
    const model = new AvailabilityModel({ seed: 0, clients: 5, availability: a });
    expect(sorted(model.onlineClients(1))).toEqual([0, 1, 2, 4]);
    expect(sorted(model.onlineClients(3, [1, 3]))).toEqual([1, 3]);
  });

  it("refuses rounds below 1, clients outside the scenario and a schedule that does not fit", () => {
    const model = new AvailabilityModel({ seed: 0, clients: 5 });
    expectError(() => model.isOnline(0, 0), ErrorCode.INVALID_CONFIG, "round");
    expectError(() => model.isOnline(5, 1), ErrorCode.INVALID_CONFIG, "clientIndex 5");
    const tooMany = availability({ schedule: [{ clients: [9], offline: { from: 1 } }] });
    expectError(
      () => new AvailabilityModel({ seed: 0, clients: 5, availability: tooMany }),
      ErrorCode.INVALID_CONFIG,
    );
  });
});
