import { describe, expect, it } from "vitest";
import { compareTimeToAccuracy, curveFromDurations, timeToTarget } from "../bench/accuracy-curve.js";
import { preferenceOfProbe } from "../bench/backends.js";
import { combinedThroughput, coresUsed } from "../bench/parallel.js";
import { parseSections, SECTION_NAMES } from "../bench/sections.js";

describe("accuracy curves", () => {
  const rounds = [
    { round: 1, seconds: 5, accuracy: 0.8 },
    { round: 2, seconds: 2, accuracy: 0.89 },
    { round: 3, seconds: 2.5, accuracy: 0.91 },
  ];

  it("adds round durations up, taking the start-up wait off the first round only", () => {
    expect(curveFromDurations(rounds, 3).map((p) => p.seconds)).toEqual([2, 4, 6.5]);
    expect(curveFromDurations(rounds).map((p) => p.seconds)).toEqual([5, 7, 9.5]);
    expect(() => curveFromDurations(rounds, -1)).toThrow(/startupSeconds/);
  });

  it("finds the first round that reaches the target", () => {
    const curve = curveFromDurations(rounds);
    expect(timeToTarget(curve, 0.9)).toEqual({ round: 3, seconds: 9.5, accuracy: 0.91 });
    expect(timeToTarget(curve, 0.89)?.round).toBe(2);
    expect(timeToTarget(curve, 0.95)).toBeNull();
  });

  it("compares the two sides, with no ratio when either never reaches the target", () => {
    const fedsim = curveFromDurations(rounds);
    const pytorch = [
      { round: 1, seconds: 1, accuracy: 0.85 },
      { round: 2, seconds: 2.5, accuracy: 0.92 },
    ];
    expect(compareTimeToAccuracy(fedsim, pytorch, 0.9)).toEqual({
      ratio: 3.8,
      fedsimSeconds: 9.5,
      pytorchSeconds: 2.5,
      target: 0.9,
      fedsimRounds: 3,
      pytorchRounds: 2,
    });
    expect(compareTimeToAccuracy(fedsim, null, 0.9).ratio).toBeNull();
    expect(compareTimeToAccuracy(fedsim, pytorch, 0.95)).toMatchObject({ ratio: null, fedsimSeconds: null });
    expect(() => compareTimeToAccuracy(fedsim, pytorch, 90)).toThrow(/target/);
  });
});

describe("suite plumbing", () => {
  it("selects sections with --only in suite order and refuses unknown names", () => {
    expect(parseSections(undefined)).toEqual([...SECTION_NAMES]);
    expect(parseSections("parallel, roundOverhead")).toEqual(["roundOverhead", "parallel"]);
    expect(SECTION_NAMES).toContain("timeToAccuracy");
    expect(() => parseSections("training,speed")).toThrow(/--only/);
    expect(() => parseSections(",")).toThrow(/--only/);
  });

  it("rates processes that ran together by all their examples over the whole window", () => {
    expect(combinedThroughput([{ examples: 100, start: 1000, end: 3000 }])).toBe(50);
    // 200 examples from the first start (1000) to the last end (5000): 50 ex/s, not 2 × 100.
    expect(
      combinedThroughput([
        { examples: 100, start: 1000, end: 2000 },
        { examples: 100, start: 1500, end: 5000 },
      ]),
    ).toBe(50);
    expect(() => combinedThroughput([])).toThrow(/empty/);
    expect(() => combinedThroughput([{ examples: 1, start: 5, end: 5 }])).toThrow(/end > start/);
  });

  it("maps probe labels to the preferences initBackend takes, new backends by their own name", () => {
    expect(preferenceOfProbe("tfjs-node-gpu")).toBe("gpu");
    expect(preferenceOfProbe("tfjs-node")).toBe("node");
    expect(preferenceOfProbe("wasm")).toBe("wasm");
    expect(preferenceOfProbe("native")).toBe("native");
  });
});

describe("coresUsed", () => {
  it("divides the runs' CPU seconds by their shared window, and knows nothing without CPU times", () => {
    expect(
      coresUsed([
        { examples: 1, start: 0, end: 2000, cpuSeconds: 2 },
        { examples: 1, start: 500, end: 2000, cpuSeconds: 1.5 },
      ]),
    ).toBeCloseTo(1.75, 12);
    expect(coresUsed([{ examples: 1, start: 0, end: 1000 }])).toBeNull();
    expect(coresUsed([])).toBeNull();
  });
});
