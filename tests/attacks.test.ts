import { describe, expect, it } from "vitest";
import type { ClientBehaviour } from "../client/node.js";
import type { RawUpdate } from "../client/update-pipeline.js";
import type { Dataset } from "../common/data/dataset.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { createRng } from "../common/rng.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import { loadScenarioData } from "../scenarios/data.js";
import { runScenario } from "../scenarios/runner.js";
import { parseScenario, type ScenarioInput } from "../scenarios/schema.js";
import {
  attackDelta,
  attackerBehaviour,
  attackerIndices,
  flipLabels,
  gaussianDelta,
  labelFlippedCopy,
  sameValueDelta,
  scaleDelta,
  signFlipDelta,
} from "../scenarios/sim/attacks.js";
import {
  composeBehaviours,
  scenarioAttackers,
  scenarioBehaviour,
  startClientPool,
} from "../scenarios/sim/pool.js";
import { stragglerEpochs } from "../scenarios/sim/stragglers.js";
import { startCoordinator } from "../server/coordinator.js";

const v = (...xs: number[]) => Float32Array.from(xs);

function update(delta: Float32Array): RawUpdate {
  return {
    specs: [{ name: "d/kernel", shape: [delta.length] }],
    delta,
    numExamples: 5,
    metrics: { loss: 1, accuracy: 0.5, steps: 1, epochsCompleted: 1, seconds: 0 },
  };
}

function scenario(overrides: Partial<ScenarioInput>) {
  return parseScenario({
    name: "attacks",
    seed: 5,
    backend: "cpu",
    dataset: { name: "mnist", limitTrain: 800, limitTest: 300 },
    model: "tiny-mlp",
    clients: 6,
    rounds: 2,
    processes: 0,
    roundDeadlineSeconds: 60,
    fit: { epochs: 1, batchSize: 16, learningRate: 0.1 },
    ...overrides,
  });
}

function thrownBy(fn: () => unknown): FedsimError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FedsimError);
    return err as FedsimError;
  }
  throw new Error("expected a FedsimError");
}

describe("update attacks (pure)", () => {
  const delta = v(1, -2, 0.5, 0);

  it("signFlip, scale and signFlipScale multiply Δ by −1, κ and −κ without touching the input", () => {
    expect(Array.from(signFlipDelta(delta))).toEqual([-1, 2, -0.5, -0]);
    expect(Array.from(scaleDelta(delta, 3))).toEqual([3, -6, 1.5, 0]);
    const rng = createRng(1);
    expect(Array.from(attackDelta(delta, { attack: "signFlipScale", scale: 4 }, rng))).toEqual([
      -4, 8, -2, -0,
    ]);
    expect(Array.from(attackDelta(delta, { attack: "scale" }, rng))).toEqual([10, -20, 5, 0]);
    expect(Array.from(attackDelta(delta, { attack: "signFlip" }, rng))).toEqual([-1, 2, -0.5, -0]);
    expect(Array.from(delta)).toEqual([1, -2, 0.5, 0]);
  });

  it("sameValue sets every coordinate to c; labelFlip leaves Δ alone", () => {
    expect(Array.from(sameValueDelta(3, -7))).toEqual([-7, -7, -7]);
    expect(Array.from(attackDelta(delta, { attack: "sameValue", value: 2.5 }, createRng(1)))).toEqual([
      2.5, 2.5, 2.5, 2.5,
    ]);
    expect(attackDelta(delta, { attack: "labelFlip" }, createRng(1))).toBe(delta);
  });

  it("gaussian replaces Δ by seeded N(0, σ²) noise of the same length", () => {
    const a = gaussianDelta(20_000, 3, createRng(9));
    const b = gaussianDelta(20_000, 3, createRng(9));
    const c = gaussianDelta(20_000, 3, createRng(10));
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    const mean = a.reduce((s, x) => s + x, 0) / a.length;
    const std = Math.sqrt(a.reduce((s, x) => s + (x - mean) ** 2, 0) / a.length);
    expect(Math.abs(mean)).toBeLessThan(0.1);
    expect(std).toBeGreaterThan(2.9);
    expect(std).toBeLessThan(3.1);
    const attacked = attackDelta(delta, { attack: "gaussian", stddev: 0.5 }, createRng(2));
    expect(attacked).toHaveLength(delta.length);
    expect(Array.from(attacked)).not.toEqual(Array.from(delta));
  });

  it("refuses non-finite parameters, naming them", () => {
    expect(thrownBy(() => scaleDelta(delta, Number.NaN)).message).toMatch(/scale/);
    expect(thrownBy(() => gaussianDelta(3, -1, createRng(1))).message).toMatch(/stddev/);
    expect(thrownBy(() => sameValueDelta(3, Number.POSITIVE_INFINITY)).message).toMatch(/value/);
  });

  it("attackerBehaviour rewrites the raw update per round, reproducibly; labelFlip has no rewrite", () => {
    const gaussian = attackerBehaviour({ attack: "gaussian", stddev: 1 }, 42);
    const r1 = gaussian.transformUpdate?.(update(delta), 1);
    expect(r1?.delta).toEqual(gaussian.transformUpdate?.(update(delta), 1).delta);
    expect(r1?.delta).not.toEqual(gaussian.transformUpdate?.(update(delta), 2).delta);
    expect(r1?.numExamples).toBe(5);
    expect(attackerBehaviour({ attack: "labelFlip" }, 42).transformUpdate).toBeUndefined();
  });
});

describe("label flipping", () => {
  const tiny: Dataset = {
    name: "tiny",
    x: v(0, 1, 2, 3, 4, 5, 6, 7),
    y: Int32Array.from([0, 1, 2, 3]),
    n: 4,
    exampleShape: [2],
    numClasses: 4,
  };

  it("maps y to numClasses − 1 − y on a copy, leaving the shared partition alone", () => {
    const poisoned = labelFlippedCopy(tiny);
    expect(Array.from(poisoned.y)).toEqual([3, 2, 1, 0]);
    expect(Array.from(tiny.y)).toEqual([0, 1, 2, 3]);
    expect(poisoned.x).toBe(tiny.x);
    expect(poisoned.n).toBe(4);
    expect(Array.from(flipLabels(Int32Array.from([0, 9, 4]), 10))).toEqual([9, 0, 5]);
  });

  it("refuses labels outside [0, numClasses)", () => {
    expect(thrownBy(() => flipLabels(Int32Array.from([0, 4]), 4)).code).toBe(ErrorCode.BAD_DATA);
  });
});

describe("choosing attackers", () => {
  it("takes explicit indices, and a seeded draw of `count` distinct clients", () => {
    expect(attackerIndices([4, 1, 4], 6, 0)).toEqual([1, 4]);
    const drawn = attackerIndices({ count: 4 }, 20, 7);
    expect(drawn).toHaveLength(4);
    expect(new Set(drawn).size).toBe(4);
    expect(drawn.every((i) => i >= 0 && i < 20)).toBe(true);
    expect(attackerIndices({ count: 4 }, 20, 7)).toEqual(drawn);
    expect(thrownBy(() => attackerIndices([6], 6, 0)).message).toMatch(/outside/);
    expect(thrownBy(() => attackerIndices({ count: 7 }, 6, 0)).message).toMatch(/count/);
  });

  it("the scenario schema refuses out-of-range attackers and parameters the attack does not use", () => {
    const err = thrownBy(() =>
      scenario({ attackers: { clients: [0, 9], attack: "gaussian", scale: 3 }, clients: 6 }),
    );
    expect(err.code).toBe(ErrorCode.INVALID_SCENARIO);
    expect(err.details.some((d) => d.includes("attackers.clients: index 9"))).toBe(true);
    expect(err.details.some((d) => d.includes("attackers.scale"))).toBe(true);
    const count = thrownBy(() => scenario({ attackers: { clients: { count: 7 }, attack: "signFlip" } }));
    expect(count.details.some((d) => d.includes("attackers.clients.count"))).toBe(true);
  });

  it("scenarioBehaviour gives attackers the attack and honest clients none", () => {
    const s = scenario({ attackers: { clients: [1, 3], attack: "signFlipScale", scale: 2 } });
    expect([...scenarioAttackers(s)]).toEqual([1, 3]);
    const attacked = scenarioBehaviour(s, 3).transformUpdate?.(update(v(1, 2)), 1);
    expect(Array.from(attacked?.delta ?? [])).toEqual([-2, -4]);
    expect(scenarioBehaviour(s, 0).transformUpdate).toBeUndefined();
  });
});

describe("stragglers", () => {
  const opts = { fraction: 0.9, seed: 11 };

  it("a straggler trains a seeded number of epochs in [1, E−1]; everyone else trains E", () => {
    const seen = new Map<number, number>();
    let stragglers = 0;
    for (let round = 1; round <= 200; round++) {
      for (let client = 0; client < 10; client++) {
        const e = stragglerEpochs(opts, client, round, 20);
        expect(e).toBe(stragglerEpochs(opts, client, round, 20));
        expect(Number.isInteger(e) && e >= 1 && e <= 20).toBe(true);
        if (e < 20) stragglers++;
        seen.set(e, (seen.get(e) ?? 0) + 1);
      }
    }
    // 2000 coins at p = 0.9: 1800 ± 13 (1σ).
    expect(stragglers).toBeGreaterThan(1730);
    expect(stragglers).toBeLessThan(1870);
    for (let e = 1; e < 20; e++) expect(seen.get(e) ?? 0).toBeGreaterThan(40);
    expect(stragglerEpochs({ fraction: 0, seed: 1 }, 0, 1, 5)).toBe(5);
    expect(stragglerEpochs({ fraction: 1, seed: 1 }, 0, 1, 1)).toBe(1);
    const otherSeed = Array.from({ length: 50 }, (_, r) => stragglerEpochs({ ...opts, seed: 12 }, 0, r, 20));
    const sameSeed = Array.from({ length: 50 }, (_, r) => stragglerEpochs(opts, 0, r, 20));
    expect(otherSeed).not.toEqual(sameSeed);
  });

  it("composes with other roles: any drop drops, rewrites and epoch overrides chain in order", () => {
    const a: ClientBehaviour = {
      dropInRound: (r) => r === 2,
      epochsForRound: (_r, e) => e - 1,
      delayMs: () => 5,
    };
    const b: ClientBehaviour = {
      dropInRound: (r) => r === 3,
      epochsForRound: (_r, e) => e * 10,
      delayMs: () => 7,
      transformUpdate: (u) => ({ ...u, numExamples: u.numExamples + 1 }),
    };
    const both = composeBehaviours([a, b]);
    expect([1, 2, 3].map((r) => both.dropInRound?.(r))).toEqual([false, true, true]);
    expect(both.epochsForRound?.(1, 4)).toBe(30);
    expect(both.delayMs?.(1, 0)).toBe(12);
    expect(both.transformUpdate?.(update(v(1)), 1).numExamples).toBe(6);
    expect(composeBehaviours([{}])).toEqual({});
  });

  it("end to end: stragglers train fewer epochs and report them honestly to the coordinator", async () => {
    const s = scenario({
      clients: 3,
      rounds: 2,
      dataset: { name: "mnist", limitTrain: 150, limitTest: 100 },
      fit: { epochs: 4, batchSize: 25, learningRate: 0.1 },
      stragglers: { fraction: 1, seed: 3 },
    });
    const reported = new Map<number, number[]>();
    class RecordingFedAvg extends FedAvg {
      override aggregateFit(...args: Parameters<FedAvg["aggregateFit"]>) {
        const [round, , , input] = args;
        if (input.kind === "individual") {
          reported.set(
            round,
            input.updates.map((u) => u.metrics.epochsCompleted).sort((x, y) => x - y),
          );
        }
        return super.aggregateFit(...args);
      }
    }
    const data = await loadScenarioData(s);
    const coordinator = await startCoordinator({
      host: "127.0.0.1",
      port: 0,
      rounds: 2,
      model: s.model,
      testData: data.test,
      strategy: new RecordingFedAvg({ fitConfig: { epochs: 4, batchSize: 25, learningRate: 0.1 } }),
      deadlineMs: 60_000,
      minAvailableClients: 3,
      seed: s.seed,
      backend: "cpu",
      auth: { kind: "token", token: "attacks-test-token-0123" },
    });
    const nodes = await startClientPool({
      url: coordinator.url,
      scenario: s,
      clientIndices: [0, 1, 2],
      token: "attacks-test-token-0123",
    });
    try {
      await coordinator.run();
    } finally {
      for (const n of nodes) n.close();
      await coordinator.close();
    }
    for (const round of [1, 2]) {
      const expected = [0, 1, 2].map((c) => stragglerEpochs({ fraction: 1, seed: 3 }, c, round, 4));
      expect(reported.get(round)).toEqual(expected.sort((x, y) => x - y));
      expect(expected.every((e) => e >= 1 && e <= 3)).toBe(true);
    }
  });
});

describe("attackers end to end over Socket.IO", () => {
  it("2 of 6 clients sending −10·Δ wreck FedAvg: accuracy ends well below the clean run's", async () => {
    const clean = await runScenario(scenario({}), { processes: 0 });
    const attacked = await runScenario(
      scenario({ attackers: { clients: [0, 1], attack: "signFlipScale", scale: 10 } }),
      { processes: 0 },
    );
    expect(clean.final.accuracy).toBeGreaterThan(clean.initial.accuracy + 0.2);
    expect(attacked.rounds.every((r) => r.participants === 6)).toBe(true);
    expect(attacked.final.accuracy).toBeLessThan(clean.final.accuracy - 0.25);
    expect(attacked.final.loss).toBeGreaterThan(clean.final.loss);
  });
});
