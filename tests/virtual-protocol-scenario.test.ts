import { mkdtemp, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runScenario } from "../scenarios/runner.js";
import { parseScenario, type ScenarioInput } from "../scenarios/schema.js";

/**
 * Federated evaluation and secure aggregation on the virtual clock, end to end: a real
 * coordinator and real Socket.IO clients, whose evaluation answers and SecAgg stage messages take
 * simulated time from their real sizes. summary.json and metrics.jsonl carry those seconds.
 */
const PHONES = [
  { name: "slow", share: 1, speed: 0.02, downlinkMbps: 2, uplinkMbps: 1, latencyMs: 80 },
  { name: "fast", share: 1, speed: 0.1, downlinkMbps: 20, uplinkMbps: 5, latencyMs: 30 },
];

function scenario(overrides: Partial<ScenarioInput>) {
  return parseScenario({
    name: "virtual-protocol",
    seed: 5,
    backend: "cpu",
    dataset: { name: "mnist", limitTrain: 400, limitTest: 100 },
    model: "tiny-mlp",
    clients: 5,
    rounds: 1,
    processes: 0,
    fit: { epochs: 1, batchSize: 20, learningRate: 0.1 },
    clock: "virtual",
    roundDeadlineSeconds: 3600,
    virtual: { devices: { profiles: PHONES }, secondsPerExample: 0.1 },
    ...overrides,
  });
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "fedsim-virtual-protocol-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("clock: virtual with federated evaluation and SecAgg", () => {
  it("federated evaluation takes simulated time inside the round, in summary.json and metrics.jsonl", async () => {
    const outDir = path.join(tmp, "evaluation");
    const summary = await runScenario(
      scenario({ evaluation: { federated: { fraction: 1, holdout: 0.2 } } }),
      { processes: 0, outDir },
    );
    const [round] = summary.rounds;
    expect(round.federatedClients).toBe(5);
    // Each phone scores about 16 examples at a third of a training pass: seconds, not nothing.
    expect(round.simulatedEvaluationSeconds).toBeGreaterThan(1);
    const fitsEnd = Math.max(...summary.timeline.map((t) => t.simulatedArrivedAt ?? Number.NaN));
    expect(round.simulatedSeconds).toBeCloseTo(fitsEnd + (round.simulatedEvaluationSeconds ?? 0), 9);
    const [record] = (await readFile(path.join(outDir, "metrics.jsonl"), "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(record.federated.simulatedSeconds).toBe(round.simulatedEvaluationSeconds);
    const written = JSON.parse(await readFile(path.join(outDir, "summary.json"), "utf8"));
    expect(written.rounds[0].simulatedEvaluationSeconds).toBe(round.simulatedEvaluationSeconds);
  });

  it("each SecAgg stage takes simulated time from its real message sizes, inside the round", async () => {
    const summary = await runScenario(scenario({ privacy: { secagg: { clipRange: 1 } } }), {
      processes: 0,
    });
    const [round] = summary.rounds;
    expect(round.participants).toBe(5);
    expect(round.kept).toBeUndefined();
    const stages = round.simulatedStages ?? {};
    expect(Object.keys(stages)).toEqual(["advertise", "share", "routed", "unmask"]);
    // Every stage costs at least two latencies of the fastest phone.
    for (const seconds of Object.values(stages)) expect(seconds).toBeGreaterThanOrEqual(0.06);
    const setup = stages.advertise + stages.share + stages.routed;
    for (const t of summary.timeline) expect(t.simulatedSentAt).toBeCloseTo(setup, 9);
    const fitsEnd = Math.max(...summary.timeline.map((t) => t.simulatedArrivedAt ?? Number.NaN));
    expect(round.simulatedSeconds).toBeCloseTo(fitsEnd + stages.unmask, 9);
  });
});
