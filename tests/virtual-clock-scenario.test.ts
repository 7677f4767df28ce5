import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, FedsimError } from "../common/errors.js";
import type { RunSummary } from "../scenarios/report.js";
import { runScenario } from "../scenarios/runner.js";
import { loadScenarioFile, parseScenario, type ScenarioInput } from "../scenarios/schema.js";
import { PHONE_SECONDS_PER_EXAMPLE } from "../scenarios/sim/default-fleet.js";
import { secondsPerExampleOf } from "../scenarios/virtual-clock.js";
import { virtualBlockOf } from "../scenarios/virtual-schema.js";

/** The FedsimError `fn` throws, checked for its code. */
function expectFedsimError(fn: () => unknown, code: string): FedsimError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FedsimError);
    expect((err as FedsimError).code).toBe(code);
    return err as FedsimError;
  }
  throw new Error("expected a FedsimError");
}

/**
 * Scenarios on the virtual clock, end to end: a real coordinator and real Socket.IO clients in
 * this process that train for real, with arrivals decided by simulated device profiles.
 */
const SLOW_PHONES = [
  // Compute dominates: 0.1 s per example at speed 1, so about 75 examples take 75 s or 375 s.
  { name: "slow", share: 1, speed: 0.02, downlinkMbps: 2, uplinkMbps: 1, latencyMs: 80, dropoutPerHour: 3 },
  { name: "fast", share: 1, speed: 0.1, downlinkMbps: 20, uplinkMbps: 5, latencyMs: 30, dropoutPerHour: 3 },
];

function scenario(overrides: Partial<ScenarioInput> = {}) {
  return parseScenario({
    name: "virtual",
    seed: 11,
    backend: "cpu",
    dataset: { name: "mnist", limitTrain: 600, limitTest: 200 },
    model: "tiny-mlp",
    clients: 8,
    rounds: 3,
    processes: 0,
    clientsPerRound: 4,
    overSelection: 0.5,
    fit: { epochs: 1, batchSize: 20, learningRate: 0.1 },
    clock: "virtual",
    roundDeadlineSeconds: 600,
    virtual: { devices: { profiles: SLOW_PHONES }, secondsPerExample: 0.1, startHour: 9 },
    ...overrides,
  });
}

/** A summary without its wall-clock fields: what must repeat exactly for a seed. */
function simulatedPart(summary: RunSummary) {
  return {
    initial: summary.initial,
    final: summary.final,
    rounds: summary.rounds.map(({ seconds: _wall, startSeconds: _start, ...rest }) => rest),
    timeline: summary.timeline.map(({ startSeconds: _s, seconds: _w, trainSeconds: _t, ...rest }) => rest),
    virtualClock: summary.virtualClock,
  };
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "fedsim-virtual-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("clock: virtual end to end", () => {
  it("repeats the same sampled clients, arrival order and round records for a seed, in simulated minutes", async () => {
    const outDir = path.join(tmp, "first");
    const first = await runScenario(scenario(), { processes: 0, outDir });
    const second = await runScenario(scenario(), { processes: 0 });
    expect(simulatedPart(second)).toEqual(simulatedPart(first));

    // Devices that need minutes: every round lasts simulated minutes, and the clock adds up.
    expect(first.rounds).toHaveLength(3);
    for (const r of first.rounds) expect(r.simulatedSeconds).toBeGreaterThanOrEqual(60);
    const last = first.rounds[2];
    expect(first.virtualClock).toMatchObject({
      fleet: "slow, fast (scenario)",
      secondsPerExample: 0.1,
      secondsPerExampleSource: "scenario",
      startHour: 9,
      deadlineSeconds: 600,
      simulatedSeconds: (last.simulatedStart ?? 0) + (last.simulatedSeconds ?? 0),
    });
    expect(first.rounds[1].simulatedStart).toBe(
      (first.rounds[0].simulatedStart ?? 0) + (first.rounds[0].simulatedSeconds ?? 0),
    );

    // Over-selection in simulated time: six sampled, the first four arrivals kept, and within
    // each round the outcomes come in simulated order.
    for (const r of first.rounds) {
      expect(r.sampled).toBe(6);
      expect(r.participants).toBeLessThanOrEqual(4);
      const fits = first.timeline.filter((t) => t.round === r.round);
      const arrivals = fits.map((t) => t.simulatedArrivedAt ?? Number.NaN);
      expect(arrivals).toEqual([...arrivals].sort((a, b) => a - b));
      for (const t of fits) expect(t.simulatedSentAt).toBe(r.simulatedStart);
    }
    expect(first.rounds.reduce((n, r) => n + r.cancelled, 0)).toBeGreaterThan(0);

    // metrics.jsonl carries the same simulated fields as the records.
    const lines = (await readFile(path.join(outDir, "metrics.jsonl"), "utf8")).trim().split("\n");
    const records = lines.map((l) => JSON.parse(l));
    expect(records.map((r) => r.simulatedSeconds)).toEqual(first.rounds.map((r) => r.simulatedSeconds));
    expect(records[0].clients[0].simulatedArrivedAt).toBeGreaterThan(0);
  });

  it("a client that cannot arrive before the simulated deadline times out there", async () => {
    // The slow tier needs about 375 s; a 200 s deadline leaves only the fast one.
    const summary = await runScenario(
      scenario({ rounds: 1, roundDeadlineSeconds: 200, overSelection: 0, clientsPerRound: 8 }),
      { processes: 0 },
    );
    const [round] = summary.rounds;
    expect(round.simulatedSeconds).toBe(200);
    const timedOut = summary.timeline.filter((t) => t.outcome === "timeout");
    expect(timedOut.length).toBeGreaterThan(0);
    for (const t of timedOut) expect(t.simulatedArrivedAt).toBe(200);
    expect(round.failures.timeout).toBe(timedOut.length);
  });

  it("measures seconds per example on this machine when asked, with the built-in phones", async () => {
    const summary = await runScenario(
      scenario({ rounds: 1, overSelection: 0, virtual: { startHour: 2, secondsPerExample: "measured" } }),
      { processes: 0 },
    );
    expect(summary.virtualClock?.secondsPerExampleSource).toBe("measured");
    expect(summary.virtualClock?.secondsPerExample).toBeGreaterThan(0);
    expect(summary.virtualClock?.fleet).toBe("phones (built-in)");
    expect(summary.rounds[0].simulatedStart).toBeGreaterThanOrEqual(0);
  });
});

describe("clock: virtual in the scenario schema", () => {
  const base = { name: "v", clients: 4 };

  it("defaults to the real clock, and the virtual block to the built-in phones with a measured cost", () => {
    expect(parseScenario(base).clock).toBe("real");
    const v = parseScenario({ ...base, clock: "virtual", virtual: {} });
    expect(v.virtual).toMatchObject({ devices: "phones", startHour: 0 });
    // Unpinned: the built-in phones cost what the fleet's published basis says, anything else is measured.
    expect(secondsPerExampleOf(virtualBlockOf(v))).toEqual({
      value: PHONE_SECONDS_PER_EXAMPLE,
      source: "fleet",
    });
    const own = parseScenario({
      ...base,
      clock: "virtual",
      virtual: { devices: { profiles: [{ name: "p", downlinkMbps: 1, uplinkMbps: 1 }] } },
    });
    expect(secondsPerExampleOf(virtualBlockOf(own))).toEqual({ value: undefined, source: "measured" });
    const pinned = parseScenario({ ...base, clock: "virtual", virtual: { secondsPerExample: 0.2 } });
    expect(secondsPerExampleOf(virtualBlockOf(pinned))).toEqual({ value: 0.2, source: "scenario" });
  });

  it("refuses wall-clock fields on the virtual clock, saying what replaces them", () => {
    const err = expectFedsimError(
      () =>
        parseScenario({
          ...base,
          clock: "virtual",
          external: { clients: 1 },
          heterogeneity: { speed: 0.5 },
          availability: { pattern: { kind: "always" } },
          dropouts: { probability: 0.1 },
        }),
      ErrorCode.INVALID_SCENARIO,
    );
    const details = err.details.join("\n");
    expect(details).toMatch(/scenario: external: real client nodes run on the wall clock/);
    expect(details).toMatch(/scenario: heterogeneity: .*give virtual\.devices/);
    expect(details).toMatch(/scenario: availability: .*use virtual\.availability/);
    expect(details).toMatch(/scenario: dropouts: .*dropoutPerHour/);
  });

  it("refuses a virtual block on the real clock, and bad profiles or availability naming the field", () => {
    const real = expectFedsimError(() => parseScenario({ ...base, virtual: {} }), ErrorCode.INVALID_SCENARIO);
    expect(real.details).toEqual(["scenario: virtual: only used with clock: virtual"]);
    const bad = expectFedsimError(
      () =>
        parseScenario({
          ...base,
          clock: "virtual",
          virtual: {
            devices: {
              profiles: [
                {
                  name: "a",
                  share: 1,
                  downlinkMbps: 1,
                  uplinkMbps: 1,
                  speed: { kind: "uniform", min: 2, max: 1 },
                },
                { name: "b", downlinkMbps: 1, uplinkMbps: 1 },
              ],
            },
            availability: { timeZones: { offsetsHours: [0, 1], weights: [1] } },
          },
        }),
      ErrorCode.INVALID_SCENARIO,
    );
    const details = bad.details.join("\n");
    expect(details).toMatch(/scenario: virtual\.devices\.profiles\.0\.speed: min 2 exceeds max 1/);
    expect(details).toMatch(/scenario: virtual\.devices\.profiles: give every profile a share, or none/);
    expect(details).toMatch(/scenario: virtual\.availability\.timeZones\.weights: 1 weights for 2 offsets/);
    const field = expectFedsimError(
      () => parseScenario({ ...base, clock: "virtual", virtual: { secondsPerExample: -1 } }),
      ErrorCode.INVALID_SCENARIO,
    );
    expect(field.details.join("\n")).toMatch(/virtual\.secondsPerExample/);
  });

  it("reads a profile file relative to the scenario file", async () => {
    const dir = path.join(tmp, "file-scenario");
    await mkdir(dir, { recursive: true });
    await writeFile(
      path.join(dir, "s.yaml"),
      "name: f\nclock: virtual\nvirtual:\n  devices: { file: fleet.csv }\n",
    );
    const loaded = await loadScenarioFile(path.join(dir, "s.yaml"));
    expect(loaded.virtual?.devices).toEqual({ file: path.join(dir, "fleet.csv") });
  });
});
