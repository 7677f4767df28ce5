import { describe, expect, it } from "vitest";
import { AdaptiveClipping, clippedBit, updateNoiseMultiplier } from "../common/dp/adaptive.js";
import { seededNormalSource } from "../common/dp/noise.js";
import { ErrorCode, FedsimError } from "../common/errors.js";

/** A round where each client reports its bit for the current C, then the server updates C. */
function runRound(clipping: AdaptiveClipping, norms: readonly number[], seed: number): void {
  const sumOfBits = norms.reduce<number>((sum, norm) => sum + clippedBit(norm, clipping.clipNorm), 0);
  clipping.update(sumOfBits, norms.length, seededNormalSource(seed));
}

function expectInvalid(attempt: () => unknown, ...fields: string[]): void {
  try {
    attempt();
  } catch (err) {
    expect(err).toBeInstanceOf(FedsimError);
    expect((err as FedsimError).code).toBe(ErrorCode.INVALID_CONFIG);
    for (const field of fields) expect((err as FedsimError).message).toContain(field);
    return;
  }
  expect.unreachable(`expected an INVALID_CONFIG error naming ${fields.join(", ")}`);
}

describe("clippedBit", () => {
  it("is 1 when the norm is within C, 0 when the update was clipped", () => {
    expect(clippedBit(0.5, 1)).toBe(1);
    expect(clippedBit(1, 1)).toBe(1);
    expect(clippedBit(1.0001, 1)).toBe(0);
    expect(AdaptiveClipping.clippedBit(2, 1)).toBe(0);
  });
});

describe("AdaptiveClipping", () => {
  it("without noise, all norms below C shrink C by exp(−η_C(1 − γ)) per round", () => {
    const clipping = new AdaptiveClipping({ initialClipNorm: 10, noiseMultiplier: 0, clippedCountStddev: 0 });
    const norms = Array.from({ length: 20 }, () => 0.001);
    for (let round = 1; round <= 10; round++) {
      runRound(clipping, norms, round);
      expect(clipping.clipNorm).toBeCloseTo(10 * Math.exp(-0.2 * 0.5 * round), 10);
    }
  });

  it("with noisy counts, C still shrinks geometrically (seeded)", () => {
    const clipping = new AdaptiveClipping({
      initialClipNorm: 10,
      noiseMultiplier: 1,
      expectedClientsPerRound: 100,
    });
    const norms = Array.from({ length: 100 }, () => 0.001);
    for (let round = 1; round <= 10; round++) runRound(clipping, norms, round);
    // log(C/C0) = −η Σ(b̄ − γ) = −1 ± 0.2·√10·0.05 (σ_b = 5 counts over 100 clients).
    expect(Math.log(clipping.clipNorm / 10)).toBeGreaterThan(-1.15);
    expect(Math.log(clipping.clipNorm / 10)).toBeLessThan(-0.85);
  });

  it("converges to the target quantile of the norms", () => {
    const norms = Array.from({ length: 100 }, (_, i) => (i + 1) / 100);
    for (const targetQuantile of [0.5, 0.9]) {
      for (const initialClipNorm of [10, 0.01]) {
        const clipping = new AdaptiveClipping({
          initialClipNorm,
          targetQuantile,
          noiseMultiplier: 0,
          clippedCountStddev: 0,
        });
        for (let round = 0; round < 300; round++) runRound(clipping, norms, round);
        expect(Math.abs(clipping.clipNorm - targetQuantile)).toBeLessThan(0.05);
      }
    }
  });

  it("z_Δ = (z⁻² − (2σ_b)⁻²)^(−1/2), by hand", () => {
    // z = 1, σ_b = 5: (1 − 1/100)^(−1/2) = 1.0050378152592121.
    const clipping = new AdaptiveClipping({
      initialClipNorm: 1,
      noiseMultiplier: 1,
      expectedClientsPerRound: 100,
    });
    expect(clipping.clippedCountStddev).toBe(5);
    expect(clipping.noiseMultiplierForUpdates()).toBeCloseTo(1.0050378152592121, 12);
    // z = 2, σ_b = 2: (1/4 − 1/16)^(−1/2) = (3/16)^(−1/2) = 4/√3.
    expect(updateNoiseMultiplier(2, 2)).toBeCloseTo(4 / Math.sqrt(3), 12);
    expect(updateNoiseMultiplier(0, 0)).toBe(0);
  });

  it("refuses z and σ_b with 2σ_b ≤ z, naming both", () => {
    expectInvalid(() => updateNoiseMultiplier(2, 1), "noiseMultiplier", "clippedCountStddev");
    expectInvalid(() => updateNoiseMultiplier(3, 1), "noiseMultiplier", "clippedCountStddev");
    expectInvalid(() => updateNoiseMultiplier(1, 0), "noiseMultiplier", "clippedCountStddev");
    expectInvalid(
      () => new AdaptiveClipping({ initialClipNorm: 1, noiseMultiplier: 1, expectedClientsPerRound: 10 }),
      "noiseMultiplier",
      "clippedCountStddev",
    );
  });

  it("refuses other invalid parameters by name", () => {
    const base = { initialClipNorm: 1, noiseMultiplier: 1, clippedCountStddev: 5 };
    expectInvalid(() => new AdaptiveClipping({ ...base, initialClipNorm: 0 }), "initialClipNorm");
    expectInvalid(() => new AdaptiveClipping({ ...base, targetQuantile: 1.5 }), "targetQuantile");
    expectInvalid(() => new AdaptiveClipping({ ...base, clipLearningRate: -0.1 }), "clipLearningRate");
    expectInvalid(() => new AdaptiveClipping({ ...base, noiseMultiplier: -1 }), "noiseMultiplier");
    expectInvalid(
      () => new AdaptiveClipping({ initialClipNorm: 1, noiseMultiplier: 1 }),
      "clippedCountStddev",
    );
    expectInvalid(
      () => new AdaptiveClipping({ ...base, clippedCountStddev: Number.NaN }),
      "clippedCountStddev",
    );
    const clipping = new AdaptiveClipping(base);
    expectInvalid(() => clipping.update(3, 0, seededNormalSource(1)), "numClients");
    expectInvalid(() => clipping.update(-1, 5, seededNormalSource(1)), "sumOfBits");
  });

  it("resumes from its state exactly", () => {
    const norms = Array.from({ length: 50 }, (_, i) => (i + 1) / 10);
    const original = new AdaptiveClipping({
      initialClipNorm: 3,
      targetQuantile: 0.7,
      clipLearningRate: 0.3,
      noiseMultiplier: 1.2,
      expectedClientsPerRound: 50,
    });
    for (let round = 0; round < 5; round++) runRound(original, norms, round);
    const state = original.state();
    expect(state).toEqual({
      clipNorm: original.clipNorm,
      targetQuantile: 0.7,
      clipLearningRate: 0.3,
      clippedCountStddev: 2.5,
      noiseMultiplier: 1.2,
    });
    const resumed = AdaptiveClipping.fromState(JSON.parse(JSON.stringify(state)));
    for (let round = 5; round < 10; round++) {
      runRound(original, norms, round);
      runRound(resumed, norms, round);
    }
    expect(resumed.clipNorm).toBe(original.clipNorm);
    expect(resumed.noiseMultiplierForUpdates()).toBe(original.noiseMultiplierForUpdates());
  });
});
