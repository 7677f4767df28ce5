import { describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import { mixInto, StalenessBuffer } from "../common/strategy/async-aggregate.js";
import { isAsyncStrategy, type StaleUpdate } from "../common/strategy/async-strategy.js";
import { FedAsync } from "../common/strategy/fedasync.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import { FedBuff } from "../common/strategy/fedbuff.js";
import { type StalenessSpec, stalenessWeight, validateStaleness } from "../common/strategy/staleness.js";
import { expectError } from "./helpers/expect-error.js";

const f32 = (...xs: number[]) => Float32Array.from(xs);

function stale(delta: number[], staleness: number, base: number[] = delta.map(() => 0)): StaleUpdate {
  return { clientId: "c", numExamples: 1, delta: f32(...delta), base: f32(...base), staleness };
}

describe("staleness weights", () => {
  it("match the papers' formulas computed by hand", () => {
    const constant: StalenessSpec = { kind: "constant" };
    const fedbuff: StalenessSpec = { kind: "polynomial", a: 0.5 };
    const hinge: StalenessSpec = { kind: "hinge", a: 10, b: 4 };
    expect([0, 1, 7].map((t) => stalenessWeight(constant, t))).toEqual([1, 1, 1]);
    // 1/√(1+τ): τ = 0, 3, 8 give 1, 1/2, 1/3.
    expect(stalenessWeight(fedbuff, 0)).toBe(1);
    expect(stalenessWeight(fedbuff, 3)).toBeCloseTo(0.5, 15);
    expect(stalenessWeight(fedbuff, 8)).toBeCloseTo(1 / 3, 15);
    // (1+τ)^-1 at τ = 1, 4.
    expect(stalenessWeight({ kind: "polynomial", a: 1 }, 1)).toBeCloseTo(0.5, 15);
    expect(stalenessWeight({ kind: "polynomial", a: 1 }, 4)).toBeCloseTo(0.2, 15);
    // Hinge: flat up to b = 4, then 1/(10·(τ − 4) + 1).
    expect([0, 4, 5, 6].map((t) => stalenessWeight(hinge, t))).toEqual([1, 1, 1 / 11, 1 / 21]);
  });

  it("refuse bad parameters with the option named", () => {
    expectError(
      () => validateStaleness({ kind: "polynomial", a: 0 }),
      ErrorCode.INVALID_CONFIG,
      "staleness.a",
    );
    expectError(
      () => validateStaleness({ kind: "hinge", a: 1, b: -1 }, "strategy.staleness"),
      ErrorCode.INVALID_CONFIG,
      "strategy.staleness.b",
    );
    expectError(
      () => validateStaleness({ kind: "exponential" } as unknown as StalenessSpec),
      ErrorCode.INVALID_CONFIG,
      "staleness.kind",
      "exponential",
    );
    expectError(() => stalenessWeight({ kind: "constant" }, -1), ErrorCode.INVALID_CONFIG, "staleness");
    expectError(() => stalenessWeight({ kind: "constant" }, 0.5), ErrorCode.INVALID_CONFIG, "staleness");
  });
});

describe("FedBuff buffer", () => {
  it("flushes current + η·Σ s(τ)·Δ / K, computed by hand, and empties", () => {
    const buffer = new StalenessBuffer(2);
    buffer.add(f32(1, 2), 1);
    buffer.add(f32(3, 4), 0.5);
    expect(buffer.count).toBe(2);
    expect(buffer.totalWeight).toBe(1.5);
    const current = f32(10, 10);
    // Σ = [1 + 1.5, 2 + 2] = [2.5, 4]; η = 2, K = 2: current + Σ.
    expect([...buffer.flush(current, 2)]).toEqual([12.5, 14]);
    expect([...current]).toEqual([10, 10]);
    expect(buffer.count).toBe(0);
    buffer.add(f32(2, 2), 1);
    expect([...buffer.flush(f32(0, 0), 1)]).toEqual([2, 2]);
  });

  it("refuses updates of the wrong length and bad weights", () => {
    const buffer = new StalenessBuffer(2);
    expectError(() => buffer.add(f32(1), 1), ErrorCode.BAD_SHAPE);
    expectError(() => buffer.add(f32(1, 1), Number.NaN), ErrorCode.INVALID_CONFIG);
    expectError(() => buffer.flush(f32(1, 1), 1), ErrorCode.INTERNAL, "empty");
  });

  it("FedBuff publishes every K updates, weighting stale ones by 1/√(1+τ)", () => {
    const strategy = new FedBuff({ bufferSize: 2, serverLearningRate: 1 });
    const current = f32(1, 1);
    const first = strategy.onUpdate(current, stale([2, 4], 0));
    expect(first).toEqual({ weights: null, weight: 1 });
    expect(strategy.buffered).toBe(1);
    const second = strategy.onUpdate(current, stale([4, 8], 3));
    expect(second.weight).toBeCloseTo(0.5, 15);
    // (1·[2, 4] + ½·[4, 8]) / 2 = [2, 4]; plus current [1, 1].
    expect([...(second.weights ?? [])]).toEqual([3, 5]);
    expect(strategy.buffered).toBe(0);
  });

  it("equals FedAvg on equally sized clients with K = M, η = 1 and no staleness", () => {
    const deltas = [f32(0.1, -0.2, 0.3), f32(0.5, 0.25, -1), f32(-0.3, 0.7, 0.05)];
    const current = f32(1, 2, 3);
    const fedavg = new FedAvg().aggregateFit(
      1,
      current,
      [],
      {
        kind: "individual",
        updates: deltas.map((delta, i) => ({
          clientId: `c${i}`,
          numExamples: 50,
          delta,
          metrics: { loss: 0, accuracy: 0, epochsCompleted: 1 },
        })),
      },
      [],
    ).weights;
    const fedbuff = new FedBuff({ concurrency: 3, bufferSize: 3 });
    let published: Float32Array | null = null;
    for (const delta of deltas) {
      published = fedbuff.onUpdate(current, { ...stale([], 0), delta, base: current }).weights ?? published;
    }
    expect(published).not.toBeNull();
    for (let i = 0; i < current.length; i++) expect(published?.[i]).toBeCloseTo(fedavg?.[i] ?? Number.NaN, 6);
  });

  it("refuses bad options, naming them", () => {
    expectError(() => new FedBuff({ bufferSize: 0 }), ErrorCode.INVALID_CONFIG, "bufferSize");
    expectError(() => new FedBuff({ concurrency: 1.5 }), ErrorCode.INVALID_CONFIG, "concurrency");
    expectError(() => new FedBuff({ serverLearningRate: 0 }), ErrorCode.INVALID_CONFIG, "serverLearningRate");
    expectError(
      () => new FedBuff({ staleness: { kind: "hinge", a: 0, b: 1 } }),
      ErrorCode.INVALID_CONFIG,
      "staleness.a",
    );
  });
});

describe("FedAsync mixing", () => {
  it("mixes x ← (1 − α)·x + α·(base + Δ), by hand", () => {
    // The client trained from base [1, 1] and moved to [2, 0]; α = ½ from current [0, 0].
    expect([...mixInto(f32(0, 0), f32(1, 1), f32(1, -1), 0.5)]).toEqual([1, 0]);
    expectError(() => mixInto(f32(0), f32(0, 0), f32(0, 0), 0.5), ErrorCode.BAD_SHAPE);
    expectError(() => mixInto(f32(0), f32(0), f32(0), 1.5), ErrorCode.INVALID_CONFIG);
  });

  it("publishes every update with αₜ = α·s(τ)", () => {
    const strategy = new FedAsync({ mixing: 0.8, staleness: { kind: "polynomial", a: 0.5 } });
    const current = f32(4, 8);
    // τ = 3: αₜ = 0.8 · ½ = 0.4; the client's model is base + Δ = [0, 0] + [1, 3].
    const step = strategy.onUpdate(current, stale([1, 3], 3));
    expect(step.weight).toBeCloseTo(0.4, 15);
    expect(step.weights?.[0]).toBeCloseTo(0.6 * 4 + 0.4 * 1, 6);
    expect(step.weights?.[1]).toBeCloseTo(0.6 * 8 + 0.4 * 3, 6);
    expect([...current]).toEqual([4, 8]);
    const hinge = new FedAsync({ mixing: 0.5, staleness: { kind: "hinge", a: 1, b: 2 } });
    expect(hinge.onUpdate(current, stale([0, 0], 2)).weight).toBe(0.5);
    expect(hinge.onUpdate(current, stale([0, 0], 4)).weight).toBeCloseTo(0.5 / 3, 15);
  });

  it("refuses a mixing weight outside (0, 1]", () => {
    expectError(() => new FedAsync({ mixing: 0 }), ErrorCode.INVALID_CONFIG, "mixing", "(0, 1]");
    expectError(() => new FedAsync({ mixing: 1.5 }), ErrorCode.INVALID_CONFIG, "mixing");
    expect(new FedAsync({ mixing: 1 }).mixing).toBe(1);
  });

  it("is told apart from synchronous strategies", () => {
    expect(isAsyncStrategy(new FedAsync())).toBe(true);
    expect(isAsyncStrategy(new FedBuff())).toBe(true);
    expect(isAsyncStrategy(new FedAvg())).toBe(false);
  });
});
