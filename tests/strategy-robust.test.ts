import { describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import { createRng } from "../common/rng.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import { FedMedian } from "../common/strategy/fedmedian.js";
import { FedTrimmedAvg } from "../common/strategy/fedtrimmedavg.js";
import { Krum, MultiKrum } from "../common/strategy/krum.js";
import type { AggregationInput, ClientUpdate, Strategy } from "../common/strategy/strategy.js";
import { expectError } from "./helpers/expect-error.js";

const f32 = (...xs: number[]) => Float32Array.from(xs);

function update(id: string, delta: Float32Array | number[], numExamples = 1): ClientUpdate {
  return {
    clientId: id,
    numExamples,
    delta: delta instanceof Float32Array ? delta : f32(...delta),
    metrics: { loss: 0, accuracy: 0, epochsCompleted: 1 },
  };
}

const individual = (updates: ClientUpdate[]): AggregationInput => ({ kind: "individual", updates });

const SUM: AggregationInput = {
  kind: "sum",
  weightedDeltaSum: f32(1, 1),
  totalWeight: 2,
  count: 2,
  clientIds: ["a", "b"],
};

function expectClose(actual: ArrayLike<number> | null, expected: ArrayLike<number>, digits = 6): void {
  expect(actual).not.toBeNull();
  expect(actual!.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(actual![i]).toBeCloseTo(expected[i], digits);
}

/** 7 honest deltas scattered around (1, …, 1) and 2 attackers far away, in shuffled order. */
function planted(dim = 10): { updates: ClientUpdate[]; honest: Set<string> } {
  const rng = createRng(21);
  const updates: ClientUpdate[] = [];
  for (let i = 0; i < 7; i++) {
    updates.push(
      update(
        `h${i}`,
        Float32Array.from({ length: dim }, () => 1 + 0.05 * rng.normal()),
        10,
      ),
    );
  }
  // The attackers agree with each other and claim many examples; neither helps them under Krum.
  updates.push(update("evil0", new Float32Array(dim).fill(-40), 10_000));
  updates.push(update("evil1", new Float32Array(dim).fill(-40.5), 10_000));
  const order = [3, 7, 0, 5, 8, 1, 6, 2, 4];
  return {
    updates: order.map((i) => updates[i]),
    honest: new Set(updates.slice(0, 7).map((u) => u.clientId)),
  };
}

/** Krum scores by brute force, independently of aggregate-robust.ts. */
function naiveScores(deltas: Float32Array[], f: number): number[] {
  return deltas.map((a, i) => {
    const dists = deltas
      .filter((_, j) => j !== i)
      .map((b) => a.reduce((s, x, c) => s + (x - b[c]) ** 2, 0))
      .sort((x, y) => x - y);
    return dists.slice(0, deltas.length - f - 2).reduce((s, x) => s + x, 0);
  });
}

describe("FedMedian and FedTrimmedAvg", () => {
  it("FedMedian adds the coordinate-wise median delta and ignores example counts", () => {
    const result = new FedMedian().aggregateFit(
      1,
      f32(10, 10),
      [],
      individual([update("a", [1, -1], 1), update("b", [2, 5], 1), update("c", [100, 0], 1000)]),
      [],
    );
    expectClose(result.weights, [12, 10]);
  });

  it("FedTrimmedAvg trims ⌊β·n⌋ per side", () => {
    const updates = [[1], [2], [3], [4], [100]].map((d, i) => update(`c${i}`, d));
    // β = 0.2, n = 5 → trim 1: mean(2, 3, 4) = 3
    const trimmed = new FedTrimmedAvg({ trimBeta: 0.2 }).aggregateFit(1, f32(0), [], individual(updates), []);
    expectClose(trimmed.weights, [3]);
    expect(trimmed.metrics.trimmedPerSide).toBe(1);
    // β = 0.1 → trim 0: mean = 22
    const plain = new FedTrimmedAvg({ trimBeta: 0.1 }).aggregateFit(1, f32(0), [], individual(updates), []);
    expectClose(plain.weights, [22]);
  });

  it("validates trimBeta", () => {
    expectError(() => new FedTrimmedAvg({ trimBeta: 0.5 }), ErrorCode.INVALID_CONFIG, "trimBeta", "[0, 0.5)");
    expectError(() => new FedTrimmedAvg({ trimBeta: -0.1 }), ErrorCode.INVALID_CONFIG, "trimBeta");
  });
});

describe("Krum and Multi-Krum", () => {
  it("Krum picks an honest update in a planted example (7 honest, 2 attackers, f = 2)", () => {
    const { updates, honest } = planted();
    const result = new Krum({ byzantineClients: 2 }).aggregateFit(
      1,
      new Float32Array(10),
      [],
      individual(updates),
      [],
    );
    const scores = naiveScores(
      updates.map((u) => u.delta),
      2,
    );
    const best = scores.indexOf(Math.min(...scores));
    expect(honest.has(updates[best].clientId)).toBe(true);
    // x = 0 + the chosen delta, exactly.
    expect(Array.from(result.weights!)).toEqual(Array.from(updates[best].delta));
    expect(result.metrics.krumSelected).toBe(1);
  });

  it("Multi-Krum averages the m best-scored updates", () => {
    const { updates, honest } = planted();
    const result = new MultiKrum({ byzantineClients: 2, multiKrumM: 3 }).aggregateFit(
      1,
      new Float32Array(10),
      [],
      individual(updates),
      [],
    );
    const scores = naiveScores(
      updates.map((u) => u.delta),
      2,
    );
    const best3 = scores
      .map((s, i) => [s, i])
      .sort((a, b) => a[0] - b[0])
      .slice(0, 3)
      .map(([, i]) => i);
    for (const i of best3) expect(honest.has(updates[i].clientId)).toBe(true);
    const expected = new Array(10)
      .fill(0)
      .map((_, c) => best3.reduce((s, i) => s + updates[i].delta[c], 0) / 3);
    expectClose(result.weights, expected);
    expect(result.metrics.krumSelected).toBe(3);
  });

  it("Multi-Krum's default m is n − f, which excludes both attackers here", () => {
    const { updates } = planted();
    const result = new MultiKrum({ byzantineClients: 2 }).aggregateFit(
      1,
      new Float32Array(10),
      [],
      individual(updates),
      [],
    );
    expect(result.metrics.krumSelected).toBe(7);
    for (const v of result.weights!) expect(Math.abs(v - 1)).toBeLessThan(0.1);
    // FedAvg, by contrast, is dragged to the attackers (they claim 10,000 examples each).
    const avg = new FedAvg().aggregateFit(1, new Float32Array(10), [], individual(updates), []);
    expect(avg.weights![0]).toBeLessThan(-30);
  });

  it("keeps the model with a reason naming n and f when n ≤ 2f + 2", () => {
    const { updates } = planted();
    const result = new Krum({ byzantineClients: 2 }).aggregateFit(
      1,
      new Float32Array(10),
      [],
      individual(updates.slice(0, 6)),
      [],
    );
    expect(result.weights).toBeNull();
    expect(result.keptReason).toContain("n > 2f + 2");
    expect(result.keptReason).toContain("n=6");
    expect(result.keptReason).toContain("f=2");
  });

  it("validates f and m, and refuses a clientsPerRound that can never satisfy n > 2f + 2", () => {
    expectError(
      () => new Krum({ byzantineClients: -1 }),
      ErrorCode.INVALID_CONFIG,
      "byzantineClients",
      "≥ 0",
    );
    expectError(() => new Krum({ byzantineClients: 1.5 }), ErrorCode.INVALID_CONFIG, "byzantineClients");
    expectError(
      () => new Krum({ byzantineClients: 2, clientsPerRound: 6 }),
      ErrorCode.INVALID_CONFIG,
      "Krum needs n > 2f + 2",
    );
    expect(() => new Krum({ byzantineClients: 2, clientsPerRound: 7 })).not.toThrow();
    expectError(() => new MultiKrum({ multiKrumM: 0 }), ErrorCode.INVALID_CONFIG, "multiKrumM", "≥ 1");
    expectError(
      () => new MultiKrum({ byzantineClients: 1, clientsPerRound: 5, multiKrumM: 5 }),
      ErrorCode.INVALID_CONFIG,
      "multiKrumM",
    );
  });
});

describe("robust strategies and sums", () => {
  it("refuse a secure-aggregation sum with INCOMPATIBLE_OPTIONS", () => {
    const robust: Strategy[] = [new FedMedian(), new FedTrimmedAvg(), new Krum(), new MultiKrum()];
    for (const strategy of robust) {
      expect(strategy.requiresIndividualUpdates).toBe(true);
      expectError(
        () => strategy.aggregateFit(1, f32(0, 0), [], SUM, []),
        ErrorCode.INCOMPATIBLE_OPTIONS,
        strategy.name,
      );
    }
    // Mean-based ones take it: FedAvg gives x + Σ/W.
    expectClose(new FedAvg().aggregateFit(1, f32(0, 0), [], SUM, []).weights, [0.5, 0.5]);
  });
});
