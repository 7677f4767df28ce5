import { describe, expect, it } from "vitest";
import { targetsTable } from "../bench/report/report-sections.js";
import { evaluateTargets, TARGETS, type TargetInputs } from "../bench/report/targets.js";

function inputs(overrides: Partial<TargetInputs> = {}): TargetInputs {
  return {
    training: [
      { model: "mnist-cnn", batch: 50, backend: "wasm", ratio: 0.17 },
      { model: "mnist-cnn", batch: 50, backend: "native", ratio: 0.62 },
      { model: "mnist-cnn", batch: 50, backend: "cpu", ratio: null },
      { model: "mnist-2nn", batch: 10, backend: "wasm", ratio: 0.3 },
      { model: "mnist-2nn", batch: 50, backend: "native", ratio: 1.2 },
    ],
    roundOverhead: { ratio: 1.5 },
    aggregation: { ratio: 0.49 },
    privacy: { secaggPerMaskRatio: 2.9 },
    parallel: { speedup: 1.85, cores: 2 },
    timeToAccuracy: { ratio: 2.5 },
    ...overrides,
  };
}

const byId = (results: ReturnType<typeof evaluateTargets>) => new Map(results.map((r) => [r.id, r]));

describe("evaluateTargets", () => {
  it("checks every target of the issue, in order", () => {
    expect(TARGETS.map((t) => t.id)).toEqual([
      "training-cnn-b50",
      "training-2nn-b10",
      "training-2nn-b50",
      "round-overhead",
      "aggregation",
      "secagg-masking",
      "parallel",
      "time-to-accuracy",
    ]);
  });

  it("judges each figure against its threshold in the right direction, boundaries included", () => {
    const r = byId(evaluateTargets(inputs()));
    expect(r.get("round-overhead")?.status).toBe("met"); // 1.5 ≤ 1.5
    expect(r.get("aggregation")?.status).toBe("missed"); // 0.49 < 0.5
    expect(r.get("secagg-masking")?.status).toBe("met");
    expect(r.get("parallel")?.status).toBe("met");
    expect(r.get("time-to-accuracy")?.status).toBe("missed"); // 2.5 > 2
    expect(r.get("training-2nn-b10")?.status).toBe("missed");
  });

  it("takes the best backend for training and says which, with the stretch goal judged apart", () => {
    const r = byId(evaluateTargets(inputs()));
    const cnn = r.get("training-cnn-b50")!;
    expect(cnn.measured).toBe(0.62);
    expect(cnn.detail).toMatch(/native/);
    expect(cnn.status).toBe("met");
    expect(cnn.stretchMet).toBe(false);
    expect(r.get("training-2nn-b50")?.stretchMet).toBeUndefined();
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

  it("reads an older privacy section's per-mask ratio from its last row, and flags other core counts", () => {
    const r = byId(
      evaluateTargets(
        inputs({
          privacy: { rows: [{ secaggPerMaskRatio: 2 }, { secaggPerMaskRatio: 3.4 }] },
          parallel: { speedup: 3.5, cores: 4 },
        }),
      ),
    );
    expect(r.get("secagg-masking")).toMatchObject({ measured: 3.4, status: "missed" });
    expect(r.get("parallel")?.detail).toMatch(/4 cores/);
  });

  it("renders one table row per target with the goal, figure and status", () => {
    const table = targetsTable(evaluateTargets(inputs()));
    expect(table.rows).toHaveLength(TARGETS.length);
    const cnn = table.rows[0];
    expect(cnn[1]).toBe("≥ 0.5× (stretch 1×)");
    expect(cnn[2]).toBe("0.620×");
    expect(cnn[3]).toBe("met, stretch missed");
    expect(table.rows[3][1]).toBe("≤ 1.5×");
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
    // 1.62 misses 1.8 even though PyTorch itself only reaches 1.8 here: the goal stays absolute.
    expect(parallel.measured).toBe(1.62);
    expect(parallel.status).toBe("missed");
    expect(parallel.detail).toMatch(/PyTorch's pair in the same run: 1.8×, fedsim ÷ PyTorch 0.9/);
    const without = byId(evaluateTargets(inputs({ parallel: { speedup: 1.62, cores: 2, pytorch: null } })));
    expect(without.get("parallel")?.detail).not.toMatch(/PyTorch/);
  });
});
