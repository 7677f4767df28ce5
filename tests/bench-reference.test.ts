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

  it("finds the suite's Python scripts from the sources or the build", async () => {
    const ref = await import("../bench/references/torch-reference.js");
    expect(ref.scriptPath("fedavg_reference.py")).toMatch(/bench\/references\/fedavg_reference\.py$/);
    expect(ref.scriptPath("no_such_script.py")).toBeUndefined();
  });
});
