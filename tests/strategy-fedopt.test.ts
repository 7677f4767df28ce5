import { describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import { FedAvgM } from "../common/strategy/fedavgm.js";
import { FedAdagrad, FedAdam, type FedOpt, FedYogi } from "../common/strategy/fedopt.js";
import type { AggregationInput, ClientUpdate } from "../common/strategy/strategy.js";
import { expectError } from "./helpers/expect-error.js";

const f32 = (...xs: number[]) => Float32Array.from(xs);

function update(id: string, delta: number[], numExamples = 1): ClientUpdate {
  return {
    clientId: id,
    numExamples,
    delta: f32(...delta),
    metrics: { loss: 0, accuracy: 0, epochsCompleted: 1 },
  };
}

const single = (delta: number[]): AggregationInput => ({ kind: "individual", updates: [update("a", delta)] });

function expectClose(actual: ArrayLike<number> | null, expected: number[], digits = 6): void {
  expect(actual).not.toBeNull();
  expect(actual!.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(actual![i]).toBeCloseTo(expected[i], digits);
}

/** Runs deltas through a strategy round by round, returning the model after each round. */
function run(
  strategy: FedOpt | FedAvgM,
  x0: Float32Array,
  deltas: number[][],
  firstRound = 1,
): Float32Array[] {
  const models: Float32Array[] = [];
  let x = x0;
  deltas.forEach((delta, i) => {
    const result = strategy.aggregateFit(firstRound + i, x, [], single(delta), []);
    x = result.weights!;
    models.push(x);
  });
  return models;
}

// Three rounds of one client's delta; defaults η = 0.1, β1 = 0.9, β2 = 0.99, τ = 1e-3, v₀ = τ² = 1e-6.
const X0 = f32(0, 1);
const DELTAS = [
  [1, -2],
  [0.05, 3],
  [-1, 0.2],
];

describe("FedAdam", () => {
  it("follows m ← β1m + (1−β1)Δ, v ← β2v + (1−β2)Δ², x ← x + ηm/(√v + τ) over 3 rounds", () => {
    const models = run(new FedAdam(), X0, DELTAS);
    // Round 1, coordinate 0: m = 0.1·1 = 0.1; v = 0.99·1e-6 + 0.01·1 = 0.01000099;
    // x = 0 + 0.1·0.1/(√0.01000099 + 0.001) = 0.01/0.10100495 = 0.0990050489.
    // Coordinate 1: m = −0.2; v = 0.04000099; x = 1 − 0.02/0.20100248 = 0.900498738.
    expectClose(models[0], [0.0990050489, 0.900498738]);
    // Round 2: m = [0.095, 0.12], v = [0.0099259801, 0.12960098]
    expectClose(models[1], [0.193411034, 0.93373961]);
    // Round 3: m = [−0.0145, 0.128], v = [0.0198267203, 0.12870497]
    expectClose(models[2], [0.183185897, 0.969319404]);
  });
});

describe("FedYogi", () => {
  it("follows v ← v − (1−β2)Δ²·sign(v − Δ²), including a round where v shrinks", () => {
    const models = run(new FedYogi(), X0, DELTAS);
    // Round 1: v = 1e-6 + 0.01·1 = 0.010001 (v < Δ² so it grows); x0 = 0.1·0.1/(0.1000049999 + 0.001)
    expectClose(models[0], [0.0990049999, 0.90049875]);
    // Round 2, coordinate 0: v = 0.010001 > Δ² = 0.0025, so v = 0.010001 − 0.01·0.0025 = 0.009976
    expectClose(models[1], [0.19317636, 0.933688582]);
    expectClose(models[2], [0.182989231, 0.969145509]);
  });
});

describe("FedAdagrad", () => {
  it("follows v ← v + Δ² and ignores β2", () => {
    const models = run(new FedAdagrad({ beta2: 0.3 }), X0, DELTAS);
    // Round 1: v = 1e-6 + 1 = 1.000001; x0 = 0.1·0.1/(1.0000005 + 0.001) = 0.009990005
    expectClose(models[0], [0.009990005, 0.990004999]);
    // Round 2: v = [1.002501, 13.000001]
    expectClose(models[1], [0.0194686806, 0.993332277]);
    expectClose(models[2], [0.0184447399, 0.996875928]);
  });
});

describe("FedOpt state", () => {
  it("state()/restore() through JSON continues bit-identically", () => {
    for (const make of [() => new FedAdam(), () => new FedYogi(), () => new FedAdagrad()]) {
      const original = make();
      const [, afterTwo] = run(original, X0, DELTAS.slice(0, 2));
      const saved = JSON.parse(JSON.stringify(original.state()));
      const resumed = make();
      resumed.restore(saved);
      const [a] = run(original, afterTwo, [DELTAS[2]], 3);
      const [b] = run(resumed, afterTwo, [DELTAS[2]], 3);
      expect(Array.from(b)).toEqual(Array.from(a));
      // A fresh strategy (no moments) takes a different third step: the state mattered.
      const [c] = run(make(), afterTwo, [DELTAS[2]], 3);
      expect(Array.from(c)).not.toEqual(Array.from(a));
    }
  });

  it("refuses another rule's moments and corrupt state with CHECKPOINT", () => {
    const adam = new FedAdam();
    run(adam, X0, DELTAS.slice(0, 1));
    expectError(() => new FedYogi().restore(adam.state()), ErrorCode.CHECKPOINT, "fedadam", "fedyogi");
    expectError(() => new FedAdam().restore({ rule: "adam", m: 42, v: "AAAA" }), ErrorCode.CHECKPOINT, "m");
    expectError(() => new FedAdam().restore("nope"), ErrorCode.CHECKPOINT);
    expectError(() => new FedAdam().restore({ rule: "adam", m: "AAAAAA", v: "AAAA" }), ErrorCode.CHECKPOINT);
  });

  it("a restored state of the wrong size is refused at aggregation", () => {
    const adam = new FedAdam();
    run(adam, X0, DELTAS.slice(0, 1));
    const other = new FedAdam();
    other.restore(adam.state());
    expectError(() => run(other, f32(1, 2, 3), [[1, 1, 1]]), ErrorCode.BAD_SHAPE, "2 values", "3");
  });

  it("validates β1, β2, τ and η with the parameter's name and range", () => {
    expectError(() => new FedAdam({ beta1: 1 }), ErrorCode.INVALID_CONFIG, "beta1", "[0, 1)");
    expectError(() => new FedYogi({ beta2: -0.1 }), ErrorCode.INVALID_CONFIG, "beta2", "[0, 1)");
    expectError(() => new FedAdagrad({ tau: 0 }), ErrorCode.INVALID_CONFIG, "tau", "> 0");
    expectError(
      () => new FedAdam({ serverLearningRate: -1 }),
      ErrorCode.INVALID_CONFIG,
      "serverLearningRate",
    );
  });

  it("defaults η = 0.1 and names itself after the rule", () => {
    const yogi = new FedYogi();
    expect(yogi.name).toBe("fedyogi");
    expect([yogi.beta1, yogi.beta2, yogi.tau]).toEqual([0.9, 0.99, 1e-3]);
  });
});

describe("FedAvgM", () => {
  it("applies v ← βv + Δ̄, x ← x + ηv over 2 rounds", () => {
    const strategy = new FedAvgM({ momentum: 0.9, serverLearningRate: 0.5 });
    // Round 1: Δ̄ = (1·[2, −2] + 3·[2/3, −2]) / 4 = [1, −2]; v = [1, −2]; x = [0, 1] + 0.5·v = [0.5, 0]
    const r1 = strategy.aggregateFit(
      1,
      X0,
      [],
      { kind: "individual", updates: [update("a", [2, -2], 1), update("b", [2 / 3, -2], 3)] },
      [],
    );
    expectClose(r1.weights, [0.5, 0]);
    // Round 2: Δ̄ = [0.5, 0]; v = 0.9·[1, −2] + [0.5, 0] = [1.4, −1.8]; x = [0.5, 0] + 0.5·v = [1.2, −0.9]
    const r2 = strategy.aggregateFit(2, r1.weights!, [], single([0.5, 0]), []);
    expectClose(r2.weights, [1.2, -0.9]);
    expect(r2.metrics.momentumNorm).toBeCloseTo(Math.hypot(1.4, -1.8), 6);
  });

  it("momentum 0 is FedAvg with a server learning rate", () => {
    const models = run(new FedAvgM({ momentum: 0 }), X0, [
      [1, 1],
      [1, 1],
    ]);
    expectClose(models[1], [2, 3]);
  });

  it("restores its momentum and validates β", () => {
    const a = new FedAvgM();
    const [x1] = run(a, X0, [[1, -2]]);
    const b = new FedAvgM();
    b.restore(JSON.parse(JSON.stringify(a.state())));
    expect(Array.from(run(b, x1, [[0.5, 0]], 2)[0])).toEqual(Array.from(run(a, x1, [[0.5, 0]], 2)[0]));
    expectError(() => new FedAvgM({ momentum: 1 }), ErrorCode.INVALID_CONFIG, "momentum", "[0, 1)");
    expectError(() => new FedAvgM({ momentum: -0.5 }), ErrorCode.INVALID_CONFIG, "momentum");
  });
});
