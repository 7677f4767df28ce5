import { describe, expect, it } from "vitest";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { runScenario } from "../scenarios/runner.js";
import { parseScenario, type ScenarioInput } from "../scenarios/schema.js";

/**
 * Scenarios with a simulated-time budget, synchronous and asynchronous, on the virtual clock:
 * a real coordinator and real Socket.IO clients in this process, arrivals decided by profiles.
 */
const DEVICES = [
  { name: "slow", share: 1, speed: 0.5, downlinkMbps: 5, uplinkMbps: 2, latencyMs: 50 },
  { name: "fast", share: 1, speed: 1, downlinkMbps: 20, uplinkMbps: 5, latencyMs: 30 },
];
/** Every device is offline for these simulated seconds. */
const OUTAGE = { from: 300, to: 900 };
const BUDGET_HOURS = 0.5;

function scenario(overrides: Partial<ScenarioInput> = {}) {
  return parseScenario({
    name: "budget",
    seed: 5,
    backend: "cpu",
    dataset: { name: "mnist", limitTrain: 600, limitTest: 200 },
    model: "tiny-mlp",
    clients: 8,
    rounds: 1000,
    processes: 0,
    clientsPerRound: 3,
    fit: { epochs: 1, batchSize: 25, learningRate: 0.1 },
    clock: "virtual",
    roundDeadlineSeconds: 600,
    evaluation: { everyRounds: 50 },
    virtual: {
      devices: { profiles: DEVICES },
      // About 75 examples a client: a fit computes for 75 s at speed 1.
      secondsPerExample: 1,
      availability: { outages: [{ ...OUTAGE, fraction: 1 }] },
      simulatedHours: BUDGET_HOURS,
    },
    ...overrides,
  });
}

describe("a simulated-time budget", () => {
  it("stops FedBuff on the virtual clock at the budget, never dispatching to a device during its outage", async () => {
    const summary = await runScenario(
      scenario({ strategy: { name: "fedbuff", concurrency: 3, bufferSize: 2 } }),
      { processes: 0 },
    );
    const budget = BUDGET_HOURS * 3600;
    expect(summary.stopReason).toBe(`simulated-time budget of ${budget} s reached`);
    expect(summary.virtualClock?.budgetSeconds).toBe(budget);
    expect(summary.virtualClock?.simulatedSeconds).toBeLessThanOrEqual(budget);
    const updates = summary.updates ?? [];
    expect(updates.length).toBeGreaterThan(4);
    for (const u of updates) expect(u.simulatedArrivedAt).toBeLessThanOrEqual(budget);
    // The fleet's availability clock is what the loop asks: nobody is sent a fit while offline,
    // and dispatching resumes once the outage is over.
    const sent = summary.timeline.map((t) => t.simulatedSentAt ?? Number.NaN);
    expect(sent.every(Number.isFinite)).toBe(true);
    expect(sent.filter((at) => at >= OUTAGE.from && at < OUTAGE.to)).toEqual([]);
    expect(sent.some((at) => at >= OUTAGE.to)).toBe(true);
  });

  it("starts no synchronous round past the budget and records it in summary.json", async () => {
    const summary = await runScenario(scenario(), { processes: 0 });
    const budget = BUDGET_HOURS * 3600;
    expect(summary.stopReason).toBe(`simulated-time budget of ${budget} s reached`);
    expect(summary.virtualClock?.budgetSeconds).toBe(budget);
    expect(summary.rounds.length).toBeGreaterThan(1);
    for (const r of summary.rounds) expect(r.simulatedStart).toBeLessThan(budget);
    // No round samples during the outage: the clock idles to its end instead.
    for (const r of summary.rounds) {
      const start = r.simulatedStart ?? Number.NaN;
      expect(start >= OUTAGE.from && start < OUTAGE.to).toBe(false);
    }
  });

  it("refuses a budget that is not a positive number, naming the field", () => {
    let details: readonly string[] = [];
    try {
      scenario({ virtual: { simulatedHours: 0 } });
    } catch (err) {
      expect(err).toBeInstanceOf(FedsimError);
      expect((err as FedsimError).code).toBe(ErrorCode.INVALID_SCENARIO);
      details = (err as FedsimError).details;
    }
    expect(details.join("\n")).toMatch(/virtual\.simulatedHours/);
  });
});
