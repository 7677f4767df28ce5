import { afterAll, beforeAll, describe, expect, it } from "vitest";

// PYTHON is read when the module loads, so the variable is set before the dynamic import.
const saved = process.env["FEDSIM_BENCH_PYTHON"];
beforeAll(() => {
  process.env["FEDSIM_BENCH_PYTHON"] = "/nonexistent/python3";
});
afterAll(() => {
  if (saved === undefined) delete process.env["FEDSIM_BENCH_PYTHON"];
  else process.env["FEDSIM_BENCH_PYTHON"] = saved;
});

describe("the PyTorch reference runner", () => {
  it("says why when there is no Python with torch, instead of failing the section", async () => {
    const ref = await import("../bench/references/torch-reference.js");
    const out = await ref.runPythonJson("fedavg_reference.py", [], { torchThreads: [1], timeoutMs: 5000 });
    expect(out).toMatch(/\/nonexistent\/python3 not found/);
    const training = await ref.runTorchReference({
      imagesFile: "x",
      labelsFile: "y",
      threads: [1],
      learningRate: 0.01,
      cases: [],
      timeoutMs: 5000,
    });
    expect(training).toMatchObject({ available: false, results: [] });
    expect(training.reason).toMatch(/not found/);
  });

  it("sets OpenBLAS to one thread and OpenMP to the most torch threads, for the child only", async () => {
    const ref = await import("../bench/references/torch-reference.js");
    const before = process.env["OPENBLAS_NUM_THREADS"];
    const env = ref.referenceEnv([2, 1]);
    expect(env["OPENBLAS_NUM_THREADS"]).toBe("1");
    expect(env["OMP_NUM_THREADS"]).toBe("2");
    expect(process.env["OPENBLAS_NUM_THREADS"]).toBe(before);
  });

  it("auto-detection removes OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE together, for the child only", async () => {
    const ref = await import("../bench/references/torch-reference.js");
    const saved = { core: process.env["OPENBLAS_CORETYPE"], l2: process.env["OPENBLAS_L2_SIZE"] };
    process.env["OPENBLAS_CORETYPE"] = "Haswell";
    process.env["OPENBLAS_L2_SIZE"] = "512";
    try {
      const auto = ref.referenceEnv([1], ref.AUTO_BLAS);
      expect(auto["OPENBLAS_CORETYPE"]).toBeUndefined();
      expect(auto["OPENBLAS_L2_SIZE"]).toBeUndefined();
      const zen = ref.referenceEnv([1], { name: "Zen", coretype: "Zen" });
      expect(zen["OPENBLAS_CORETYPE"]).toBe("Zen");
      expect(zen["OPENBLAS_L2_SIZE"]).toBe("512");
      expect(process.env["OPENBLAS_CORETYPE"]).toBe("Haswell");
      expect(process.env["OPENBLAS_L2_SIZE"]).toBe("512");
    } finally {
      for (const [name, value] of [
        ["OPENBLAS_CORETYPE", saved.core],
        ["OPENBLAS_L2_SIZE", saved.l2],
      ] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it("searches auto-detection and the explicit core families, or only the one pinned", async () => {
    const { blasChoicesToTry } = await import("../bench/references/openblas-choices.js");
    const saved = process.env["FEDSIM_BENCH_OPENBLAS_CORETYPE"];
    try {
      delete process.env["FEDSIM_BENCH_OPENBLAS_CORETYPE"];
      const names = blasChoicesToTry().map((c) => c.name);
      expect(names[0]).toBe("auto");
      expect(names).toEqual(expect.arrayContaining(["Haswell", "SkylakeX", "Zen", "Cooperlake"]));
      process.env["FEDSIM_BENCH_OPENBLAS_CORETYPE"] = "Zen";
      expect(blasChoicesToTry()).toEqual([{ name: "Zen", coretype: "Zen" }]);
      process.env["FEDSIM_BENCH_OPENBLAS_CORETYPE"] = "";
      expect(blasChoicesToTry()).toEqual([{ name: "auto", coretype: null }]);
    } finally {
      if (saved === undefined) delete process.env["FEDSIM_BENCH_OPENBLAS_CORETYPE"];
      else process.env["FEDSIM_BENCH_OPENBLAS_CORETYPE"] = saved;
    }
  });

  it("keeps each case's fastest configuration across runs and says which won", async () => {
    const { bestOf } = await import("../bench/references/torch-reference.js");
    const { winningChoices } = await import("../bench/references/openblas-choices.js");
    const run = (blas: string, rates: [number, number]) => ({
      available: true,
      python: "p",
      torch: "1.13",
      torchThreadsTried: [2, 1],
      runs: 1,
      blas: null,
      openblasConfig: null,
      coretype: null,
      openblasNumThreads: "1",
      blasChoicesTried: [blas],
      results: rates.map((rate, i) => ({
        model: "mnist-2nn",
        batch: i === 0 ? 10 : 50,
        steps: 1,
        repeats: 1,
        threads: 1,
        examplesPerSec: rate,
        blasChoice: blas,
      })),
    });
    const merged = bestOf(run("auto", [100, 300]), run("Zen", [200, 250]));
    expect(merged.results.map((r) => r.blasChoice)).toEqual(["Zen", "auto"]);
    expect(merged.blasChoicesTried).toEqual(["auto", "Zen"]);
    const tried = [
      { name: "auto", coretype: null },
      { name: "Haswell", coretype: "Haswell" },
      { name: "Zen", coretype: "Zen" },
    ];
    expect(winningChoices(merged, tried).map((c) => c.name)).toEqual(["auto", "Zen"]);
  });

  it("time to accuracy runs PyTorch under the training section's winning OpenBLAS configuration", async () => {
    const { blasForCase } = await import("../bench/sections/time-to-accuracy.js");
    const ref = await import("../bench/references/torch-reference.js");
    const rows = [
      { model: "mnist-2nn", batch: 10, pytorchBlas: "auto" },
      { model: "mnist-2nn", batch: 50, pytorchBlas: "Zen" },
    ];
    expect(blasForCase(rows, "mnist-2nn", 10)).toEqual({ name: "auto", coretype: null });
    expect(blasForCase(rows, "mnist-2nn", 50)).toEqual({ name: "Zen", coretype: "Zen" });
    expect(blasForCase(null, "mnist-2nn", 10)).toEqual(ref.defaultBlasChoice());
  });

  it("finds the suite's Python scripts from the sources or the build", async () => {
    const ref = await import("../bench/references/torch-reference.js");
    expect(ref.scriptPath("fedavg_reference.py")).toMatch(/bench\/references\/fedavg_reference\.py$/);
    expect(ref.scriptPath("no_such_script.py")).toBeUndefined();
  });
});
