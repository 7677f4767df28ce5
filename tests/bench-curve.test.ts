import { describe, expect, it } from "vitest";
import { parseTorchMessage, startTorchPair } from "../bench/references/parallel-torch.js";
import { parallelTable } from "../bench/report/report-sections.js";
import { compareTimeToAccuracy, curveFromDurations, timeToTarget } from "../bench/sections/accuracy-curve.js";
import { asyncSimulationTable } from "../bench/sections/async-simulation.js";
import { preferenceOfProbe } from "../bench/sections/backends.js";
import {
  combinedThroughput,
  coresUsed,
  type ParallelSection,
  pairedRatios,
  spread,
  stepsForBudget,
  summarisePairs,
} from "../bench/sections/parallel.js";
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
    expect(parseSections("asyncSimulation")).toEqual(["asyncSimulation"]);
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

describe("paired parallel measurements", () => {
  // A process alone at `oneRate` ex/s and a pair at `twoRate` ex/s, each over one second from `at`.
  const repeat = (at: number, oneRate: number, twoRate: number) => ({
    one: [{ examples: oneRate, start: at, end: at + 1000, cpuSeconds: 1 }],
    two: [
      { examples: twoRate / 2, start: at + 1000, end: at + 2000, cpuSeconds: 0.9 },
      { examples: twoRate / 2, start: at + 1000, end: at + 2000, cpuSeconds: 1 },
    ],
  });

  it("divides measurements pair by pair and refuses unpaired or empty input", () => {
    expect(pairedRatios([180, 150], [100, 50])).toEqual([1.8, 3]);
    expect(() => pairedRatios([1, 2], [1])).toThrow(/as many numerators as denominators/);
    expect(() => pairedRatios([], [])).toThrow(/at least one/);
    expect(() => pairedRatios([1], [0])).toThrow(/positive denominator/);
  });

  it("gives the smallest and largest value, or null for none", () => {
    expect(spread([1.7, 1.5, 1.9])).toEqual({ min: 1.5, max: 1.9 });
    expect(spread([])).toBeNull();
  });

  it("takes the median of per-repeat ratios, so a machine that slows down between repeats cancels", () => {
    // The machine halves its speed after the first two repeats: the median of the rates would mix
    // a fast "one" with a slow "two", the paired ratios stay at 1.8 except one noisy repeat.
    const repeats = [
      repeat(0, 400, 720),
      repeat(5000, 400, 720),
      repeat(10000, 200, 360),
      repeat(15000, 200, 300),
    ];
    const s = summarisePairs(
      repeats.map((r) => r.one),
      repeats.map((r) => r.two),
    );
    expect(s.speedups).toEqual([1.8, 1.8, 1.8, 1.5]);
    expect(s.speedup).toBe(1.8);
    expect(s.speedupRange).toEqual({ min: 1.5, max: 1.8 });
    expect(s.oneExamplesPerSec).toBe(300);
    expect(s.twoExamplesPerSec).toBe(540);
    expect(s.coresUsed).toEqual({ one: 1, two: 1.9 });
    // Unpaired, the medians of the rates (300 and 480) would give 1.6: a slow "one" from one repeat
    // against a fast "two" from another. Paired, two of three repeats say 1.8.
    const drifting = [repeat(0, 400, 720), repeat(5000, 200, 360), repeat(10000, 300, 480)];
    const paired = summarisePairs(
      drifting.map((r) => r.one),
      drifting.map((r) => r.two),
    );
    expect([paired.oneExamplesPerSec, paired.twoExamplesPerSec]).toEqual([300, 480]);
    expect(paired.speedup).toBe(1.8);
    expect(() => summarisePairs([repeats[0].one], [])).toThrow(/as many/);
  });

  it("sizes runs from a per-step time, within 5 and 1000 steps", () => {
    expect(stepsForBudget(1.4, 0.035)).toBe(40);
    expect(stepsForBudget(1.4, 1)).toBe(5);
    expect(stepsForBudget(100, 0.001)).toBe(1000);
    expect(stepsForBudget(1, 0)).toBe(5);
  });
});

describe("the PyTorch side of the parallelism section", () => {
  it("reads torch_parallel.py's lines, turning its wall times from seconds into milliseconds", () => {
    expect(
      parseTorchMessage(
        '{"type": "ready", "available": true, "torch": "1.13.0", "threads": 1, "secondsPerStep": 0.025}',
      ),
    ).toEqual({
      type: "ready",
      torch: "1.13.0",
      threads: 1,
      secondsPerStep: 0.025,
    });
    expect(
      parseTorchMessage(
        '{"type": "done", "examples": 300, "start": 1700000000.5, "end": 1700000001.25, "cpuSeconds": 0.7}',
      ),
    ).toEqual({
      type: "done",
      run: { examples: 300, start: 1700000000500, end: 1700000001250, cpuSeconds: 0.7 },
    });
    expect(parseTorchMessage('{"type": "done", "examples": 300, "start": 1, "end": 2}')).toEqual({
      type: "done",
      run: { examples: 300, start: 1000, end: 2000 },
    });
    expect(parseTorchMessage('{"type": "done", "examples": 300}')).toMatchObject({ type: "error" });
    expect(parseTorchMessage('{"type": "ready", "secondsPerStep": 0}')).toMatchObject({ type: "error" });
    expect(parseTorchMessage('{"type": "error", "message": "ValueError: bad"}')).toEqual({
      type: "error",
      message: "ValueError: bad",
    });
    expect(parseTorchMessage("UserWarning: something")).toBeNull();
    expect(parseTorchMessage('{"type": "progress"}')).toBeNull();
  });

  it("turns torch_reference.py's 'available: false' into the reason PyTorch is missing", () => {
    expect(
      parseTorchMessage('{"available": false, "reason": "cannot import torch/numpy with /usr/bin/python3"}'),
    ).toEqual({
      type: "unavailable",
      reason: "cannot import torch/numpy with /usr/bin/python3",
    });
  });

  const data = {
    x: new Float32Array(2 * 784),
    y: new Int32Array(2),
    n: 2,
    exampleShape: [28, 28, 1],
    numClasses: 10,
  };

  it("says why when there is no python, without starting anything", () => {
    const pair = startTorchPair({
      data,
      batch: 10,
      learningRate: 0.01,
      warmupSteps: 2,
      python: "/nonexistent/python3",
    });
    expect(pair).toBe("/nonexistent/python3 not found (install python3-torch)");
  });

  it("rejects `ready` with the exit when the python process dies at once", async () => {
    const pair = startTorchPair({
      data,
      batch: 10,
      learningRate: 0.01,
      warmupSteps: 2,
      python: "/bin/false",
    });
    if (typeof pair === "string") throw new Error(pair);
    try {
      await expect(pair.ready).rejects.toThrow(/torch_parallel.py exited with 1/);
    } finally {
      pair.close();
    }
  });
});

describe("the parallelism table", () => {
  const section: ParallelSection = {
    speedup: 1.62,
    speedups: [1.5, 1.62, 1.7],
    speedupRange: { min: 1.5, max: 1.7 },
    oneClientExamplesPerSec: 290,
    twoClientsExamplesPerSec: 470,
    backend: "native",
    model: "mnist-cnn",
    batch: 10,
    stepsPerClient: 40,
    repeats: 3,
    cores: 2,
    coresUsed: { one: 1.02, two: 1.92 },
    threadsPerProcess: 1,
    pytorch: {
      speedup: 1.8,
      speedups: [1.75, 1.8, 1.9],
      speedupRange: { min: 1.75, max: 1.9 },
      oneExamplesPerSec: 420,
      twoExamplesPerSec: 756,
      coresUsed: { one: 1, two: 1.95 },
      torch: "1.13.0",
      stepsPerProcess: 60,
      threadsPerProcess: 1,
    },
    pytorchReason: null,
    ratioToPytorch: 0.9,
  };
  const cells = (s: ParallelSection, label: RegExp) =>
    parallelTable(s).rows.find((r) => label.test(String(r[0])));

  it("shows both speedups, the per-repeat spread and the ratio, with a note on the reference", () => {
    expect(cells(section, /^speedup/)).toEqual(["speedup (median of per-repeat ratios)", "1.620", "1.800"]);
    expect(cells(section, /^per-repeat/)?.[1]).toBe("1.500–1.700 (1.5, 1.62, 1.7)");
    expect(cells(section, /^per-repeat/)?.[2]).toMatch(/^1.750–1.900/);
    expect(cells(section, /÷ PyTorch/)?.[1]).toBe("0.900");
    expect(parallelTable(section).notes.join(" ")).toMatch(
      /PyTorch reference: the same protocol in the same run/,
    );
  });

  it("says why PyTorch is missing, and reads results written before the reference existed", () => {
    const none = { ...section, pytorch: null, pytorchReason: "cannot import torch", ratioToPytorch: null };
    expect(cells(none, /^speedup/)?.[2]).toBe("–");
    expect(parallelTable(none).notes.join(" ")).toMatch(/No PyTorch reference: cannot import torch/);
    const {
      pytorch: _p,
      pytorchReason: _r,
      ratioToPytorch: _q,
      speedups: _s,
      speedupRange: _g,
      ...old
    } = section;
    const table = parallelTable(old as ParallelSection);
    expect(table.rows.find((r) => /^speedup/.test(String(r[0])))?.[1]).toBe("1.620");
    expect(table.rows.find((r) => /^per-repeat/.test(String(r[0])))?.slice(1)).toEqual(["–", "–"]);
  });
});

describe("asynchronous simulation section", () => {
  it("puts simulated seconds per wall second first and says what the run covered", () => {
    const table = asyncSimulationTable({
      scenario: "async-cross-device",
      strategy: "fedbuff",
      clients: 1000,
      concurrency: 65,
      bufferSize: 10,
      versions: 100,
      updates: 1000,
      simulatedSeconds: 120,
      wallSeconds: 60,
      simulatedPerWallSecond: 2,
      updatesPerWallSecond: 16.7,
      backend: "native",
      stopReason: null,
    });
    expect(table.rows[0]).toEqual(["simulated seconds per wall second", 2]);
    expect(table.rows).toContainEqual(["versions published / updates aggregated", "100 / 1000"]);
    expect(table.notes[0]).toMatch(/M = 65, K = 10/);
    expect(table.notes[0]).toMatch(/after its last version/);
  });
});
