import { describe, expect, it } from "vitest";
import { ErrorCode, type FedsimError } from "../common/errors.js";
import { createRng } from "../common/rng.js";
import { FedAsync } from "../common/strategy/fedasync.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import { FedAvgM } from "../common/strategy/fedavgm.js";
import { FedBuff } from "../common/strategy/fedbuff.js";
import { FedMedian } from "../common/strategy/fedmedian.js";
import { FedAdagrad, FedAdam, FedYogi } from "../common/strategy/fedopt.js";
import { FedProx } from "../common/strategy/fedprox.js";
import { FedTrimmedAvg } from "../common/strategy/fedtrimmedavg.js";
import { Krum, MultiKrum } from "../common/strategy/krum.js";
import { parseScenario } from "../scenarios/schema.js";
import { createStrategy, STRATEGY_NAMES } from "../scenarios/strategy-factory.js";
import { expectError } from "./helpers/expect-error.js";

function scenario(extra: Record<string, unknown> = {}) {
  return parseScenario({ name: "t", clients: 20, ...extra });
}

const CLASSES = {
  fedavg: FedAvg,
  fedprox: FedProx,
  fedavgm: FedAvgM,
  fedadam: FedAdam,
  fedyogi: FedYogi,
  fedadagrad: FedAdagrad,
  fedmedian: FedMedian,
  fedtrimmedavg: FedTrimmedAvg,
  krum: Krum,
  multikrum: MultiKrum,
  fedbuff: FedBuff,
  fedasync: FedAsync,
} as const;

describe("createStrategy", () => {
  it("builds every named strategy, from the scenario and as an override", () => {
    expect([...STRATEGY_NAMES].sort()).toEqual(Object.keys(CLASSES).sort());
    for (const name of STRATEGY_NAMES) {
      const fromFile = createStrategy(scenario({ strategy: { name, proximalMu: 0.01 } }));
      expect(fromFile).toBeInstanceOf(CLASSES[name]);
      expect(fromFile.name).toBe(name);
      const overridden = createStrategy(scenario({ fit: { proximalMu: 0.01 } }), name);
      expect(overridden.name).toBe(name);
    }
  });

  it("a learning-rate schedule sets each round's client learning rate, for every strategy", () => {
    for (const name of ["fedavg", "fedprox", "fedadam"] as const) {
      const strategy = createStrategy(
        scenario({
          rounds: 10,
          strategy: { name, proximalMu: 0.01 },
          fit: { learningRate: 0.1, learningRateSchedule: { kind: "step", every: 2, factor: 0.5 } },
        }),
      ) as FedAvg;
      expect([1, 2, 3, 5].map((r) => strategy.fitConfigFor(r).learningRate)).toEqual([0.1, 0.1, 0.05, 0.025]);
      const clients = Array.from({ length: 20 }, (_, i) => ({ id: `c${i}` }));
      expect(strategy.configureFit(3, clients, createRng(1)).config.learningRate).toBe(0.05);
    }
  });

  it("the schema accepts exactly the factory's names", () => {
    for (const name of STRATEGY_NAMES) expect(scenario({ strategy: { name } }).strategy.name).toBe(name);
    expectError(() => scenario({ strategy: { name: "fedsgd" } }), ErrorCode.INVALID_SCENARIO);
  });

  it("refuses an unknown name and lists the valid ones", () => {
    expectError(
      () => createStrategy(scenario(), "fedbogus"),
      ErrorCode.INVALID_CONFIG,
      "fedbogus",
      STRATEGY_NAMES.join(", "),
    );
  });

  it("passes each strategy its options", () => {
    const opt = createStrategy(
      scenario({ strategy: { name: "fedyogi", beta1: 0.5, beta2: 0.9, tau: 0.01 } }),
    ) as FedYogi;
    expect([opt.beta1, opt.beta2, opt.tau]).toEqual([0.5, 0.9, 0.01]);
    const m = createStrategy(scenario({ strategy: { name: "fedavgm", momentum: 0.7 } })) as FedAvgM;
    expect(m.momentum).toBe(0.7);
    const t = createStrategy(
      scenario({ strategy: { name: "fedtrimmedavg", trimBeta: 0.3 } }),
    ) as FedTrimmedAvg;
    expect(t.trimBeta).toBe(0.3);
    const k = createStrategy(
      scenario({ strategy: { name: "multikrum", byzantineClients: 3, multiKrumM: 4 } }),
    ) as MultiKrum;
    expect([k.byzantineClients, k.multiKrumM]).toEqual([3, 4]);
  });

  it("acceptPartialWork reaches FedAvg", () => {
    const input = {
      kind: "individual" as const,
      updates: [
        {
          clientId: "a",
          numExamples: 1,
          delta: Float32Array.of(2),
          metrics: { loss: 0, accuracy: 0, epochsCompleted: 2 },
        },
        {
          clientId: "b",
          numExamples: 1,
          delta: Float32Array.of(4),
          metrics: { loss: 0, accuracy: 0, epochsCompleted: 1 },
        },
      ],
    };
    const fit = { epochs: 2 };
    const strict = createStrategy(scenario({ fit })) as FedAvg;
    expect(strict.aggregateFit(1, Float32Array.of(0), [], input, []).weights![0]).toBe(2);
    const lenient = createStrategy(
      scenario({ fit, strategy: { name: "fedavg", acceptPartialWork: true } }),
    ) as FedAvg;
    expect(lenient.aggregateFit(1, Float32Array.of(0), [], input, []).weights![0]).toBe(3);
  });

  it("fedprox takes μ from strategy.proximalMu or fit.proximalMu and sends it to clients", () => {
    const available = [{ id: "a" }];
    for (const extra of [
      { strategy: { name: "fedprox", proximalMu: 0.1 } },
      { strategy: { name: "fedprox" }, fit: { proximalMu: 0.1 } },
    ]) {
      const prox = createStrategy(scenario(extra)) as FedProx;
      expect(prox.proximalMu).toBe(0.1);
      expect(prox.configureFit(1, available, createRng(0)).config.proximalMu).toBe(0.1);
    }
    expectError(
      () => createStrategy(scenario({ strategy: { name: "fedprox" } })),
      ErrorCode.INVALID_CONFIG,
      "proximalMu",
    );
    expectError(
      () =>
        createStrategy(scenario({ strategy: { name: "fedprox", proximalMu: 0.1 }, fit: { proximalMu: 1 } })),
      ErrorCode.INVALID_CONFIG,
      "disagree",
    );
    expectError(
      () =>
        createStrategy(
          scenario({ strategy: { name: "fedprox", proximalMu: 0.1, acceptPartialWork: false } }),
        ),
      ErrorCode.INVALID_CONFIG,
      "acceptPartialWork",
    );
  });

  it("keeps uniform weights under DP", () => {
    const dp = { privacy: { dp: { noiseMultiplier: 1, clipNorm: 1 } } };
    const strategy = createStrategy(scenario(dp)) as FedAvg;
    const input = {
      kind: "individual" as const,
      updates: [
        {
          clientId: "a",
          numExamples: 1,
          delta: Float32Array.of(2),
          metrics: { loss: 0, accuracy: 0, epochsCompleted: 1 },
        },
        {
          clientId: "b",
          numExamples: 99,
          delta: Float32Array.of(4),
          metrics: { loss: 0, accuracy: 0, epochsCompleted: 1 },
        },
      ],
    };
    expect(strategy.aggregateFit(1, Float32Array.of(0), [], input, []).weights![0]).toBe(3);
  });

  it("refuses robust strategies with DP or secure aggregation before the run", () => {
    for (const name of ["fedmedian", "fedtrimmedavg", "krum", "multikrum"]) {
      expectError(
        () => createStrategy(scenario({ privacy: { dp: { noiseMultiplier: 1, clipNorm: 1 } } }), name),
        ErrorCode.INCOMPATIBLE_OPTIONS,
        name,
      );
      expectError(
        () => createStrategy(scenario({ privacy: { secagg: {} } }), name),
        ErrorCode.INCOMPATIBLE_OPTIONS,
        "secure aggregation",
      );
    }
    expect(createStrategy(scenario({ privacy: { secagg: {} } }), "fedadam").name).toBe("fedadam");
  });

  it("the schema refuses out-of-range options, naming the field", () => {
    const bad = [
      { momentum: 1 },
      { beta1: 1.2 },
      { beta2: -1 },
      { tau: 0 },
      { trimBeta: 0.5 },
      { byzantineClients: 1.5 },
      { multiKrumM: 0 },
      { proximalMu: -1 },
      { serverLearningRate: 0 },
      { concurrency: 0 },
      { bufferSize: 1.5 },
      { mixing: 0 },
      { staleness: { kind: "polynomial", a: 0 } },
      { staleness: { kind: "hinge", a: 1 } },
      { staleness: { kind: "exponential" } },
    ];
    for (const options of bad) {
      const field = Object.keys(options)[0];
      try {
        scenario({ strategy: { name: "fedavg", ...options } });
        throw new Error(`accepted ${field}`);
      } catch (err) {
        expect((err as FedsimError).code).toBe(ErrorCode.INVALID_SCENARIO);
        expect((err as FedsimError).details.join("\n")).toContain(field);
      }
    }
  });

  it("builds the asynchronous strategies with their options and defaults", () => {
    const buff = createStrategy(
      scenario({
        clientsPerRound: 4,
        strategy: {
          name: "fedbuff",
          bufferSize: 3,
          serverLearningRate: 0.5,
          staleness: { kind: "constant" },
        },
      }),
    ) as FedBuff;
    expect(buff).toMatchObject({
      concurrency: 4,
      bufferSize: 3,
      serverLearningRate: 0.5,
      staleness: { kind: "constant" },
    });
    // Defaults: M = the synchronous sample (fractionFit 0.25 of 20), K = M, 1/√(1+τ).
    const byDefault = createStrategy(
      scenario({ fractionFit: 0.25, strategy: { name: "fedbuff" } }),
    ) as FedBuff;
    expect(byDefault).toMatchObject({
      concurrency: 5,
      bufferSize: 5,
      serverLearningRate: 1,
      staleness: { kind: "polynomial", a: 0.5 },
    });
    const mix = createStrategy(
      scenario({
        strategy: {
          name: "fedasync",
          concurrency: 2,
          mixing: 0.9,
          staleness: { kind: "hinge", a: 10, b: 4 },
        },
      }),
    ) as FedAsync;
    expect(mix).toMatchObject({ concurrency: 2, mixing: 0.9, staleness: { kind: "hinge", a: 10, b: 4 } });
    expect(mix.fitConfig(0)).toEqual({ epochs: 1, batchSize: 10, learningRate: 0.05 });
  });

  it("refuses what needs rounds with an asynchronous strategy, naming the field", () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ privacy: { dp: { noiseMultiplier: 1, clipNorm: 1 } } }, "privacy.dp"],
      [{ privacy: { secagg: {} } }, "privacy.secagg"],
      [{ overSelection: 0.5 }, "overSelection"],
      [{ evaluation: { federated: { fraction: 0.5 } } }, "evaluation.federated"],
    ];
    for (const [extra, field] of cases) {
      for (const name of ["fedbuff", "fedasync"]) {
        expectError(() => createStrategy(scenario(extra), name), ErrorCode.INCOMPATIBLE_OPTIONS, field, name);
      }
    }
    expect(createStrategy(scenario({ privacy: { envelope: true } }), "fedbuff").name).toBe("fedbuff");
  });
});
