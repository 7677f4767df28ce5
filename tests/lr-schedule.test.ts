import { describe, expect, it } from "vitest";
import { learningRateAt, learningRateScheduleSchema } from "../common/strategy/lr-schedule.js";

describe("learning-rate schedules", () => {
  it("step decay multiplies by the factor every n rounds", () => {
    const s = { kind: "step", every: 3, factor: 0.5 } as const;
    expect([1, 2, 3, 4, 6, 7].map((r) => learningRateAt(s, 0.1, r, 10))).toEqual([
      0.1, 0.1, 0.1, 0.05, 0.05, 0.025,
    ]);
  });

  it("exponential decay and the constant schedule", () => {
    expect(learningRateAt({ kind: "exponential", decay: 0.9 }, 1, 3, 5)).toBeCloseTo(0.81, 12);
    expect(learningRateAt({ kind: "constant" }, 0.05, 40, 50)).toBe(0.05);
  });

  it("cosine runs from the base rate to the minimum at the last round", () => {
    const s = { kind: "cosine", minLearningRate: 0.01 } as const;
    expect(learningRateAt(s, 0.11, 1, 11)).toBeCloseTo(0.11, 12);
    expect(learningRateAt(s, 0.11, 6, 11)).toBeCloseTo(0.06, 12);
    expect(learningRateAt(s, 0.11, 11, 11)).toBeCloseTo(0.01, 12);
    expect(learningRateAt(s, 0.11, 1, 1)).toBeCloseTo(0.11, 12);
  });

  it("refuses bad schedules and rounds", () => {
    expect(learningRateScheduleSchema.safeParse({ kind: "step", every: 0, factor: 0.5 }).success).toBe(false);
    expect(learningRateScheduleSchema.safeParse({ kind: "exponential", decay: 1.5 }).success).toBe(false);
    expect(learningRateScheduleSchema.safeParse({ kind: "linear" }).success).toBe(false);
    expect(() => learningRateAt({ kind: "constant" }, 0.1, 0, 5)).toThrow(/round ≥ 1/);
  });
});
