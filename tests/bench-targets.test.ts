import { describe, expect, it } from "vitest";
import { targetsTable } from "../bench/report/report-sections.js";
import { evaluateTargets, TARGETS, type TargetInputs } from "../bench/report/targets.js";

function inputs(overrides: Partial<TargetInputs> = {}): TargetInputs {
  return {
    training: [
      { model: "mnist-cnn", batch: 10, backend: "native", ratio: 1.5 },
      { model: "mnist-cnn", batch: 50, backend: "wasm", ratio: 0.17 },
      { model: "mnist-cnn", batch: 50, backend: "native", ratio: 1.42 },
      { model: "mnist-cnn", batch: 50, backend: "cpu", ratio: null },
      { model: "mnist-2nn", batch: 10, backend: "wasm", ratio: 0.3 },
      { model: "mnist-2nn", batch: 50, backend: "native", ratio: 1.2 },
    ],
    roundOverhead: { ratio: 1.2 },
    aggregation: { ratio: 0.89 },
    privacy: {
      secaggVsKeystream: 1.9,
      envelopeRatio: 9,
      rows: [
        { megabytes: 0.8, envelopeRatio: 22.8 },
        { megabytes: 6.653, envelopeRatio: 9.5 },
      ],
    },
    parallel: { speedup: 1.92, cores: 2 },
    timeToAccuracy: { ratio: 0.51 },
    ...overrides,
  };
}

const byId = (results: ReturnType<typeof evaluateTargets>) => new Map(results.map((r) => [r.id, r]));

describe("evaluateTargets", () => {
  it("checks every target of the issue, in order", () => {
    expect(TARGETS.map((t) => t.id)).toEqual([
      "training-cnn-b10",
      "training-cnn-b50",
      "training-2nn-b10",
      "training-2nn-b50",
      "aggregation",
      "round-overhead",
      "parallel",
      "time-to-accuracy",
      "secagg-client",
      "envelope",
    ]);
  });

  it("holds issue 17's thresholds", () => {
    const goal = new Map(TARGETS.map((t) => [t.id, `${t.comparison} ${t.threshold}`]));
    expect(Object.fromEntries(goal)).toEqual({
      "training-cnn-b10": ">= 1.5",
      "training-cnn-b50": ">= 1.5",
      "training-2nn-b10": ">= 2",
      "training-2nn-b50": ">= 1",
      aggregation: ">= 0.9",
      "round-overhead": "<= 1.2",
      parallel: ">= 1.9",
      "time-to-accuracy": "<= 0.5",
      "secagg-client": "<= 2",
      envelope: "<= 10",
    });
  });

  it("judges each figure against its threshold in the right direction, boundaries included", () => {
    const r = byId(evaluateTargets(inputs()));
    expect(r.get("training-cnn-b10")?.status).toBe("met"); // 1.5 ≥ 1.5
    expect(r.get("round-overhead")?.status).toBe("met"); // 1.2 ≤ 1.2
    expect(r.get("aggregation")?.status).toBe("missed"); // 0.89 < 0.9
    expect(r.get("secagg-client")?.status).toBe("met");
    expect(r.get("parallel")?.status).toBe("met");
    expect(r.get("time-to-accuracy")?.status).toBe("missed"); // 0.51 > 0.5
    expect(r.get("training-2nn-b10")?.status).toBe("missed");
  });

  it("takes the best backend for training and says which", () => {
    const r = byId(evaluateTargets(inputs()));
    const cnn = r.get("training-cnn-b50")!;
    expect(cnn.measured).toBe(1.42);
    expect(cnn.detail).toMatch(/native/);
    expect(cnn.status).toBe("missed");
    expect(r.get("training-2nn-b50")?.status).toBe("met");
  });

  it("reads the envelope target from the 6.65 MB row, not the smaller one", () => {
    const r = byId(evaluateTargets(inputs()));
    expect(r.get("envelope")).toMatchObject({ measured: 9.5, status: "met" });
    const without = byId(
      evaluateTargets(inputs({ privacy: { rows: [{ megabytes: 0.8, envelopeRatio: 5 }] } })),
    );
    expect(without.get("envelope")).toMatchObject({ status: "not measured" });
    expect(without.get("envelope")?.detail).toMatch(/no 6.65 MB row/);
  });

  it("marks sections that were not run or have no ratio as not measured", () => {
    const r = byId(
      evaluateTargets(
        inputs({ timeToAccuracy: null, parallel: { speedup: null, cores: 2 }, training: null }),
      ),
    );
    expect(r.get("time-to-accuracy")).toMatchObject({ status: "not measured", measured: null });
    expect(r.get("time-to-accuracy")?.detail).toMatch(/not run/);
    expect(r.get("parallel")?.status).toBe("not measured");
    expect(r.get("training-cnn-b50")?.status).toBe("not measured");
  });

  it("leaves the SecAgg target unmeasured for a privacy section without the keystream figure, and flags other core counts", () => {
    const r = byId(
      evaluateTargets(
        inputs({
          privacy: { rows: [{ megabytes: 6.653, envelopeRatio: 21 }] },
          parallel: { speedup: 3.5, cores: 4 },
        }),
      ),
    );
    expect(r.get("secagg-client")).toMatchObject({ measured: null, status: "not measured" });
    expect(r.get("envelope")).toMatchObject({ measured: 21, status: "missed" });
    expect(r.get("parallel")?.detail).toMatch(/4 cores/);
  });

  it("renders one table row per target with the goal, figure and status", () => {
    const table = targetsTable(evaluateTargets(inputs()));
    expect(table.rows).toHaveLength(TARGETS.length);
    const cnn = table.rows[1];
    expect(cnn[1]).toBe("≥ 1.5×");
    expect(cnn[2]).toBe("1.420×");
    expect(cnn[3]).toBe("missed");
    expect(table.rows[5][1]).toBe("≤ 1.2×");
  });
});

describe("targets and --quick sections", () => {
  it("flags a figure measured in a --quick run", () => {
    const r = evaluateTargets(
      inputs({ measured: { parallel: { quick: true }, aggregation: { quick: false } } }),
    );
    expect(r.find((t) => t.id === "parallel")?.detail).toMatch(/--quick/);
    expect(r.find((t) => t.id === "aggregation")?.detail).not.toMatch(/--quick/);
  });
});

describe("targets measured on a busy machine", () => {
  it("says so: a section's load above the core count, and a starved parallel pair", () => {
    const r = evaluateTargets(
      inputs({
        parallel: { speedup: 1.1, cores: 2, coresUsed: { two: 0.6 } },
        measured: {
          parallel: { quick: false, loadAverage: 9.5 },
          aggregation: { quick: false, loadAverage: 1.2 },
        },
        environment: { cores: 2 },
      }),
    );
    const parallel = r.find((t) => t.id === "parallel")!;
    expect(parallel.status).toBe("missed");
    expect(parallel.detail).toMatch(/inconclusive: the two processes kept only 0.6 of 2 cores busy/);
    expect(parallel.detail).toMatch(/load 9.5 on 2 cores/);
    expect(r.find((t) => t.id === "aggregation")?.detail).toBe("");
  });
});

describe("the parallel target and its PyTorch reference", () => {
  it("keeps the absolute goal on fedsim's speedup and names PyTorch's pair in the detail", () => {
    const r = byId(
      evaluateTargets(
        inputs({ parallel: { speedup: 1.62, cores: 2, pytorch: { speedup: 1.8 }, ratioToPytorch: 0.9 } }),
      ),
    );
    const parallel = r.get("parallel")!;
    // 1.62 misses 1.9 even though PyTorch itself only reaches 1.8 here: the goal stays absolute.
    expect(parallel.measured).toBe(1.62);
    expect(parallel.status).toBe("missed");
    expect(parallel.detail).toMatch(/PyTorch's pair in the same run: 1.8×, fedsim ÷ PyTorch 0.9/);
    const without = byId(evaluateTargets(inputs({ parallel: { speedup: 1.62, cores: 2, pytorch: null } })));
    expect(without.get("parallel")?.detail).not.toMatch(/PyTorch/);
  });
});
