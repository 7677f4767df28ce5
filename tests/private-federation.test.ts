import { describe, expect, it } from "vitest";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import { runScenario } from "../scenarios/runner.js";
import { parseScenario, type ScenarioInput } from "../scenarios/schema.js";
import { assertStrategyFitsPrivacy } from "../server/plugins/privacy.js";

/** A small, fast scenario on the embedded MNIST, hosted in this process on the cpu backend. */
function scenario(overrides: Partial<ScenarioInput>) {
  return parseScenario({
    name: "test",
    seed: 3,
    backend: "cpu",
    dataset: { name: "mnist", limitTrain: 1500, limitTest: 500 },
    model: "tiny-mlp",
    clients: 10,
    rounds: 3,
    minFitClients: 2,
    roundDeadlineSeconds: 60,
    fit: { epochs: 1, batchSize: 16, learningRate: 0.1 },
    ...overrides,
  });
}

describe("private updates end to end over Socket.IO", () => {
  it("SecAgg with 2 clients dropped mid-round and distributed DP: accuracy improves, ε is reported", async () => {
    const summary = await runScenario(
      scenario({
        privacy: {
          secagg: { graph: "complete", clipRange: 1 },
          dp: { mode: "distributed", noiseMultiplier: 0.3, clipNorm: 2, delta: 1e-5 },
        },
        dropouts: { probability: 0, schedule: { "2": [3, 7] } },
      }),
      { processes: 0 },
    );
    expect(summary.rounds).toHaveLength(3);
    expect(summary.rounds[1].participants).toBe(8);
    expect(summary.rounds[1].failures).toEqual({ disconnect: 2 });
    expect(summary.rounds[1].dropouts).toBe(2);
    expect(summary.rounds[1].kept).toBeUndefined();
    expect(summary.final.accuracy).toBeGreaterThan(summary.initial.accuracy + 0.2);
    expect(summary.final.epsilon).toBeGreaterThan(0);
    expect(summary.rounds.map((r) => r.epsilon)).toEqual([...summary.rounds.map((r) => r.epsilon)].sort());
  });

  it("SecAgg with more dropouts than the threshold allows fails the round with a typed error, model unchanged", async () => {
    const summary = await runScenario(
      scenario({
        clients: 6,
        rounds: 1,
        privacy: { secagg: { graph: "complete", clipRange: 1 } },
        // t = 5 of 6 holders: losing 2 clients leaves 4 < t shares for their keys.
        dropouts: { probability: 0, schedule: { "1": [0, 1] } },
      }),
      { processes: 0 },
    );
    expect(summary.rounds[0].kept).toMatch(/SECAGG_THRESHOLD/);
    expect(summary.rounds[0].participants).toBe(4);
    expect(summary.final.loss).toBe(summary.initial.loss);
    expect(summary.final.accuracy).toBe(summary.initial.accuracy);
  });

  it("SecAgg's unmasked mean equals plain FedAvg's up to fixed-point precision", async () => {
    const base = {
      clients: 4,
      rounds: 1,
      dataset: { name: "mnist" as const, limitTrain: 400, limitTest: 300 },
    };
    const plain = await runScenario(scenario(base), { processes: 0 });
    const masked = await runScenario(
      scenario({ ...base, privacy: { secagg: { graph: "complete", clipRange: 4 } } }),
      {
        processes: 0,
      },
    );
    // Same seed, same data, same deterministic training: the aggregates differ only by quantisation.
    expect(Math.abs(masked.final.loss - plain.final.loss)).toBeLessThan(1e-3);
    expect(Math.abs(masked.final.accuracy - plain.final.accuracy)).toBeLessThanOrEqual(0.004);
  });

  it("sealed envelopes: a run with per-round encrypted, signed updates trains", async () => {
    const summary = await runScenario(scenario({ clients: 3, rounds: 2, privacy: { envelope: true } }), {
      processes: 0,
    });
    expect(summary.rounds.every((r) => r.participants === 3)).toBe(true);
    expect(summary.final.accuracy).toBeGreaterThan(summary.initial.accuracy + 0.2);
  });

  it("central DP with a target ε stops before the budget would be exceeded, and says so", async () => {
    const summary = await runScenario(
      scenario({
        clients: 4,
        rounds: 6,
        privacy: {
          dp: { mode: "central", noiseMultiplier: 0.8, clipNorm: 1, targetEpsilon: 10, delta: 1e-5 },
        },
      }),
      { processes: 0 },
    );
    expect(summary.stopReason).toMatch(/target 10/);
    expect(summary.rounds.length).toBeLessThan(6);
    expect(summary.final.epsilon).toBeLessThanOrEqual(10);
  });

  it("adaptive clipping moves the clip norm toward the target quantile of update norms", async () => {
    const summary = await runScenario(
      scenario({
        clients: 4,
        rounds: 3,
        privacy: {
          dp: {
            mode: "central",
            noiseMultiplier: 0.5,
            clipNorm: 50,
            delta: 1e-5,
            adaptive: { targetQuantile: 0.5, clipLearningRate: 0.5, clippedCountStddev: 0.5 },
          },
        },
      }),
      { processes: 0 },
    );
    // Every update norm is far below 50, so each round's noisy count says "unclipped" and C shrinks.
    const norms = summary.rounds.map((r) => r.clipNorm ?? Number.NaN);
    expect(norms[0]).toBeLessThan(50);
    expect(norms[2]).toBeLessThan(norms[0]);
    expect(summary.final.epsilon).toBeGreaterThan(0);
  });

  it("refuses secure aggregation with a strategy that needs individual updates", () => {
    const robust = Object.assign(new FedAvg(), { name: "median", requiresIndividualUpdates: true });
    const secagg = { graph: "complete" as const, clipRange: 1, maxWeight: 1, stageTimeoutMs: 1000, seed: 0 };
    let caught: unknown;
    try {
      assertStrategyFitsPrivacy(robust, { secagg });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(FedsimError);
    expect((caught as FedsimError).code).toBe(ErrorCode.INCOMPATIBLE_OPTIONS);
    expect(() => assertStrategyFitsPrivacy(new FedAvg(), { secagg })).not.toThrow();
  });
});
