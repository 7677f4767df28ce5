import { describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import { createRng } from "../common/rng.js";
import { weightedMean } from "../common/strategy/aggregate.js";
import {
  coordinateMedian,
  krumScores,
  pairwiseSquaredDistances,
  selectInPlace,
  trimCount,
  trimmedMean,
} from "../common/strategy/aggregate-robust.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import { FedProx } from "../common/strategy/fedprox.js";
import type { AggregationInput, ClientUpdate } from "../common/strategy/strategy.js";
import { expectError } from "./helpers/expect-error.js";

const f32 = (...xs: number[]) => Float32Array.from(xs);

function update(id: string, delta: number[], numExamples = 1, epochsCompleted = 1): ClientUpdate {
  return {
    clientId: id,
    numExamples,
    delta: f32(...delta),
    metrics: { loss: 0, accuracy: 0, epochsCompleted },
  };
}

function individual(...updates: ClientUpdate[]): AggregationInput {
  return { kind: "individual", updates };
}

function expectClose(actual: ArrayLike<number>, expected: number[], digits = 6): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(actual[i]).toBeCloseTo(expected[i], digits);
}

describe("weightedMean", () => {
  it("weights by the given weights", () => {
    // (1·[1, 2] + 3·[5, 6]) / 4 = [4, 5]
    expectClose(weightedMean([f32(1, 2), f32(5, 6)], [1, 3]), [4, 5]);
  });
});

describe("selectInPlace", () => {
  it("puts the rank-k value at k with smaller values before and larger after", () => {
    const rng = createRng(11);
    for (let trial = 0; trial < 200; trial++) {
      const n = 1 + rng.int(80);
      // Few distinct values so that ties are common.
      const values = Float64Array.from({ length: n }, () => rng.int(trial % 2 === 0 ? 5 : 1000));
      const sorted = Array.from(values).sort((a, b) => a - b);
      const k = rng.int(n);
      const a = values.slice();
      selectInPlace(a, 0, n - 1, k);
      expect(a[k]).toBe(sorted[k]);
      for (let i = 0; i < k; i++) expect(a[i]).toBeLessThanOrEqual(a[k]);
      for (let i = k + 1; i < n; i++) expect(a[i]).toBeGreaterThanOrEqual(a[k]);
      expect(Array.from(a).sort((x, y) => x - y)).toEqual(sorted);
    }
  });
});

describe("coordinateMedian", () => {
  it("takes the middle value of an odd count per coordinate", () => {
    // coordinate 0: {3, 1, 2} → 2; coordinate 1: {−5, 10, 0} → 0
    expectClose(coordinateMedian([f32(3, -5), f32(1, 10), f32(2, 0)]), [2, 0]);
  });

  it("averages the two middle values of an even count", () => {
    // coordinate 0: {4, 1, 3, 2} → (2 + 3)/2; coordinate 1: {0, 0, 1, 100} → (0 + 1)/2
    expectClose(coordinateMedian([f32(4, 0), f32(1, 100), f32(3, 1), f32(2, 0)]), [2.5, 0.5]);
  });

  it("handles ties", () => {
    // {7, 7, 1} → 7; {2, 2, 2, 9} → 2; two values → their mean
    expectClose(coordinateMedian([f32(7), f32(7), f32(1)]), [7]);
    expectClose(coordinateMedian([f32(2), f32(9), f32(2), f32(2)]), [2]);
    expectClose(coordinateMedian([f32(1), f32(4)]), [2.5]);
  });

  it("matches a sort-based reference on many coordinates and counts (quickselect path)", () => {
    const rng = createRng(5);
    for (const n of [1, 2, 7, 16, 17, 24, 41]) {
      const vectors = Array.from({ length: n }, () => Float32Array.from({ length: 50 }, () => rng.normal()));
      const got = coordinateMedian(vectors);
      for (let c = 0; c < 50; c++) {
        const col = vectors.map((v) => v[c]).sort((a, b) => a - b);
        const want = n % 2 === 1 ? col[(n - 1) / 2] : (col[n / 2 - 1] + col[n / 2]) / 2;
        expect(got[c]).toBeCloseTo(want, 6);
      }
    }
  });
});

describe("trimmedMean", () => {
  it("β giving ⌊β·n⌋ = 0 is the plain mean", () => {
    expect(trimCount(0.1, 5)).toBe(0);
    // [1, 2, 3, 4, 100] → 110/5 = 22
    expectClose(trimmedMean([f32(1), f32(2), f32(3), f32(4), f32(100)], trimCount(0.1, 5)), [22]);
  });

  it("β > 0 drops ⌊β·n⌋ values from each end per coordinate", () => {
    expect(trimCount(0.2, 5)).toBe(1);
    expect(trimCount(0.4, 6)).toBe(2);
    // coordinate 0: {1, 2, 3, 4, 100} minus 1 and 100 → 3; coordinate 1: {−50, 0, 0, 6, 3} → (0+0+3)/3 = 1
    const vectors = [f32(1, -50), f32(2, 0), f32(3, 0), f32(4, 6), f32(100, 3)];
    expectClose(trimmedMean(vectors, 1), [3, 1]);
    // n = 6, trim 2: {9, 1, 5, 3, 7, 2} → keep {3, 5} → 4
    expectClose(trimmedMean([f32(9), f32(1), f32(5), f32(3), f32(7), f32(2)], 2), [4]);
  });

  it("matches a sort-based reference (quickselect path)", () => {
    const rng = createRng(9);
    for (const [n, trim] of [
      [20, 4],
      [33, 10],
      [17, 8],
    ]) {
      const vectors = Array.from({ length: n }, () => Float32Array.from({ length: 30 }, () => rng.int(7)));
      const got = trimmedMean(vectors, trim);
      for (let c = 0; c < 30; c++) {
        const kept = vectors
          .map((v) => v[c])
          .sort((a, b) => a - b)
          .slice(trim, n - trim);
        expect(got[c]).toBeCloseTo(kept.reduce((s, x) => s + x, 0) / kept.length, 5);
      }
    }
  });

  it("refuses a trim that leaves nothing and a β outside [0, 0.5)", () => {
    expectError(() => trimmedMean([f32(1), f32(2)], 1), ErrorCode.INVALID_CONFIG, "trim");
    expectError(() => trimCount(0.5, 10), ErrorCode.INVALID_CONFIG, "trimBeta", "[0, 0.5)");
  });
});

describe("pairwise distances and Krum scores", () => {
  it("computes squared distances by hand", () => {
    // a = (0, 0), b = (3, 4), c = (1, 0): |ab|² = 25, |ac|² = 1, |bc|² = 4 + 16 = 20
    const d = pairwiseSquaredDistances([f32(0, 0), f32(3, 4), f32(1, 0)]);
    expect(Array.from(d)).toEqual([0, 25, 1, 25, 0, 20, 1, 20, 0]);
  });

  it("sums across coordinate blocks", () => {
    const rng = createRng(3);
    const vectors = Array.from({ length: 4 }, () => Float32Array.from({ length: 5000 }, () => rng.normal()));
    const d = pairwiseSquaredDistances(vectors);
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 4; j++) {
        let want = 0;
        for (let c = 0; c < 5000; c++) want += (vectors[i][c] - vectors[j][c]) ** 2;
        expect(d[i * 4 + j]).toBeCloseTo(want, 6);
      }
    }
  });

  it("scores each update by its n − f − 2 nearest neighbours", () => {
    // Points on a line: 0, 1, 2, 10, 30. n = 5, f = 1 → 2 neighbours each.
    const points = [0, 1, 2, 10, 30].map((x) => f32(x));
    const scores = krumScores(pairwiseSquaredDistances(points), 5, 1);
    // 0: 1 + 4 = 5; 1: 1 + 1 = 2; 2: 1 + 4 = 5; 10: 64 + 81 = 145; 30: 400 + 784 = 1184
    expect(Array.from(scores)).toEqual([5, 2, 5, 145, 1184]);
    expectError(
      () => krumScores(pairwiseSquaredDistances(points), 5, 2),
      ErrorCode.INVALID_CONFIG,
      "n > 2f + 2",
    );
  });
});

describe("FedAvg partial work vs FedProx", () => {
  const fitConfig = { epochs: 3, batchSize: 10, learningRate: 0.1 };
  const current = f32(1, 1);
  // Two full updates and one straggler that managed 1 of 3 epochs.
  const input = () =>
    individual(update("a", [1, 0], 1, 3), update("b", [3, 0], 1, 3), update("slow", [0, 30], 2, 1));

  it("FedAvg drops results below the round's epochs and reports droppedPartial", () => {
    const result = new FedAvg({ fitConfig }).aggregateFit(1, current, [], input(), []);
    // mean of [1, 0] and [3, 0] = [2, 0]
    expectClose(result.weights!, [3, 1]);
    expect(result.metrics.droppedPartial).toBe(1);
  });

  it("FedAvg keeps the model when dropping leaves fewer than minFitClients, and says why", () => {
    const result = new FedAvg({ fitConfig, minFitClients: 3 }).aggregateFit(1, current, [], input(), []);
    expect(result.weights).toBeNull();
    expect(result.keptReason).toContain("minFitClients=3");
    expect(result.keptReason).toContain("1 dropped for partial work");
  });

  it("FedAvg with acceptPartialWork, and FedProx, keep the straggler", () => {
    // weighted: (1·[1,0] + 1·[3,0] + 2·[0,30]) / 4 = [1, 15]
    for (const strategy of [
      new FedAvg({ fitConfig, acceptPartialWork: true }),
      new FedProx({ fitConfig, proximalMu: 0.01 }),
    ]) {
      const result = strategy.aggregateFit(1, current, [], input(), []);
      expectClose(result.weights!, [2, 16]);
      expect(result.metrics.droppedPartial).toBe(0);
    }
  });

  it("nothing is partial when the server itself bounded the work with maxSteps", () => {
    const result = new FedAvg({ fitConfig: { ...fitConfig, maxSteps: 5 } }).aggregateFit(
      1,
      current,
      [],
      input(),
      [],
    );
    expect(result.metrics.droppedPartial).toBe(0);
  });

  it("FedProx puts μ into every round's config and validates it", () => {
    const prox = new FedProx({ fitConfig: { ...fitConfig, proximalMu: 5 }, proximalMu: 0.1 });
    const plan = prox.configureFit(2, [{ id: "a" }, { id: "b" }], createRng(1));
    expect(plan.config).toEqual({ ...fitConfig, proximalMu: 0.1 });
    expect(new FedProx({ proximalMu: 0 }).proximalMu).toBe(0);
    expectError(() => new FedProx({ proximalMu: -0.1 }), ErrorCode.INVALID_CONFIG, "proximalMu", "≥ 0");
    expectError(() => new FedProx({ proximalMu: Number.NaN }), ErrorCode.INVALID_CONFIG, "proximalMu");
  });

  it("FedAvg validates serverLearningRate", () => {
    expectError(
      () => new FedAvg({ serverLearningRate: 0 }),
      ErrorCode.INVALID_CONFIG,
      "serverLearningRate",
      "> 0",
    );
  });
});
