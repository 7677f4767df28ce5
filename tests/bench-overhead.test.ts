import { describe, expect, it } from "vitest";
import { overheadOfRound, phaseSeconds, summariseRoundOverhead } from "../bench/sections/overhead.js";
import { FedsimError } from "../common/errors.js";

describe("round overhead arithmetic", () => {
  const sample = { round: 3, roundSeconds: 2, trainSeconds: [0.1, 0.3, 0.2] };

  it("subtracts only the slowest client's training when clients train in parallel", () => {
    const r = overheadOfRound(sample, "parallel");
    expect(r.slowestTrainSeconds).toBeCloseTo(0.3, 12);
    expect(r.totalTrainSeconds).toBeCloseTo(0.6, 12);
    expect(r.criticalTrainSeconds).toBeCloseTo(0.3, 12);
    expect(r.overheadSeconds).toBeCloseTo(1.7, 12);
  });

  it("subtracts every client's training when they train one after another", () => {
    const r = overheadOfRound(sample, "serial");
    expect(r.criticalTrainSeconds).toBeCloseTo(0.6, 12);
    expect(r.overheadSeconds).toBeCloseTo(1.4, 12);
  });

  it("never reports a negative overhead", () => {
    expect(
      overheadOfRound({ round: 1, roundSeconds: 0.5, trainSeconds: [0.4, 0.4] }, "serial").overheadSeconds,
    ).toBe(0);
  });

  it("refuses a round without training times and negative or non-finite seconds, naming the field", () => {
    expect(() => overheadOfRound({ round: 1, roundSeconds: 1, trainSeconds: [] }, "serial")).toThrow(
      /trainSeconds/,
    );
    expect(() => overheadOfRound({ round: 1, roundSeconds: -1, trainSeconds: [0] }, "serial")).toThrow(
      /roundSeconds/,
    );
    expect(() =>
      overheadOfRound({ round: 1, roundSeconds: 1, trainSeconds: [Number.NaN] }, "serial"),
    ).toThrow(FedsimError);
  });

  it("summarises rounds by their medians and divides the median overhead by the raw transfer time", () => {
    const s = summariseRoundOverhead(
      [
        { round: 2, roundSeconds: 3, trainSeconds: [0.5, 0.5] }, // overhead 2
        { round: 3, roundSeconds: 2, trainSeconds: [0.25, 0.25] }, // overhead 1.5
        { round: 4, roundSeconds: 9, trainSeconds: [1, 1] }, // overhead 7 (a disturbed round)
      ],
      1.25,
      "serial",
    );
    expect(s.overheadSeconds).toBeCloseTo(2, 12);
    expect(s.roundSeconds).toBe(3);
    expect(s.ratio).toBeCloseTo(1.6, 12);
    expect(s.rounds.map((r) => r.round)).toEqual([2, 3, 4]);
  });

  it("gives no ratio for a zero raw transfer time and refuses no rounds at all", () => {
    expect(summariseRoundOverhead([sample], 0, "parallel").ratio).toBeNull();
    expect(() => summariseRoundOverhead([], 1, "parallel")).toThrow(/at least one/);
  });
});

describe("phaseSeconds", () => {
  const events = [
    { round: 1, phase: "COLLECTING", at: 1000 },
    { round: 1, phase: "CONFIGURE_FIT", at: 900 },
    { round: 1, phase: "AGGREGATING", at: 3000 },
    { round: 2, phase: "COLLECTING", at: 5000 },
    // The loop's final DONE carries the last round's number, after that round ended.
    { round: 1, phase: "DONE", at: 4000 },
  ];

  it("times each phase until the next one starts, the last one until the round's end", () => {
    const p = phaseSeconds(events, 1, 3500);
    expect(p).toEqual({ CONFIGURE_FIT: 0.1, COLLECTING: 2, AGGREGATING: 0.5 });
  });

  it("leaves the last phase out when the round's end is unknown", () => {
    const p = phaseSeconds(events.slice(0, 3), 1);
    expect(Object.keys(p).sort()).toEqual(["COLLECTING", "CONFIGURE_FIT"]);
  });
});
