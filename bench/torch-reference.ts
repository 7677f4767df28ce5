import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { cpuFlags } from "./environment.js";
import { errorMessage } from "./timing.js";

/**
 * Runs bench/torch_reference.py, the PyTorch reference for the training section, in its own
 * process with the OpenBLAS settings that make it an honest reference (MEASURED.md):
 * Debian's /usr/bin/python3 (the python first on PATH may lack torch), OPENBLAS_NUM_THREADS=1 so
 * OpenBLAS threads do not fight torch's own, and OPENBLAS_CORETYPE picked from the CPU flags,
 * because OpenBLAS 0.3.21 does not recognise newer CPUs and falls back to SSE3 kernels.
 * The variables are set for the child only, never for this process.
 */
export const PYTHON = process.env["FEDSIM_BENCH_PYTHON"] ?? "/usr/bin/python3";

export interface TorchCase {
  model: string;
  batch: number;
  steps: number;
  warmup: number;
  repeats: number;
}

export interface TorchCaseResult {
  model: string;
  batch: number;
  steps: number;
  repeats: number;
  /** The torch thread count that gave this (fastest) rate. */
  threads: number;
  examplesPerSec: number;
}

export interface TorchReference {
  available: boolean;
  /** Why the reference is missing, when it is. */
  reason?: string;
  python: string;
  torch: string | null;
  /** Thread counts tried per case; each case keeps the fastest (see torch_reference.py). */
  torchThreadsTried: number[] | null;
  /** How many times the reference ran (before and after fedsim's runs); each case keeps its best. */
  runs: number;
  /** The BLAS shared library torch loaded (after Debian's alternatives). */
  blas: string | null;
  /** openblas_get_config() of that library, e.g. "OpenBLAS 0.3.21 ... SkylakeX MAX_THREADS=64". */
  openblasConfig: string | null;
  coretype: string | null;
  openblasNumThreads: string | null;
  results: TorchCaseResult[];
}

/** Combines two runs of the reference, keeping each case's faster result. */
export function bestOf(a: TorchReference, b: TorchReference): TorchReference {
  if (!a.available) return b;
  if (!b.available) return a;
  const results = a.results.map((ra) => {
    const rb = b.results.find((r) => r.model === ra.model && r.batch === ra.batch);
    return rb !== undefined && rb.examplesPerSec > ra.examplesPerSec ? rb : ra;
  });
  return { ...a, runs: a.runs + b.runs, results };
}

/** SkylakeX with AVX-512, Haswell with AVX2, otherwise OpenBLAS's own detection. */
export function chooseCoretype(): string | null {
  const override = process.env["FEDSIM_BENCH_OPENBLAS_CORETYPE"];
  if (override !== undefined) return override === "" ? null : override;
  const flags = cpuFlags();
  if (flags.avx512f) return "SkylakeX";
  if (flags.avx2) return "Haswell";
  return null;
}

function scriptPath(): string | undefined {
  const here = path.dirname(fileURLToPath(import.meta.url));
  // Compiled to dist/bench/, the script stays in the source tree's bench/.
  const candidates = [
    path.join(here, "torch_reference.py"),
    path.join(here, "..", "..", "bench", "torch_reference.py"),
  ];
  return candidates.find((file) => existsSync(file));
}

function missing(reason: string): TorchReference {
  return {
    available: false,
    reason,
    python: PYTHON,
    torch: null,
    torchThreadsTried: null,
    runs: 0,
    blas: null,
    openblasConfig: null,
    coretype: null,
    openblasNumThreads: null,
    results: [],
  };
}

export async function runTorchReference(options: {
  imagesFile: string;
  labelsFile: string;
  /** Torch thread counts to try per case, e.g. [1, 2]. */
  threads: number[];
  learningRate: number;
  cases: TorchCase[];
  timeoutMs: number;
}): Promise<TorchReference> {
  const script = scriptPath();
  if (script === undefined) return missing("bench/torch_reference.py not found");
  if (!existsSync(PYTHON)) return missing(`${PYTHON} not found (install python3-torch)`);
  const coretype = chooseCoretype();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    OPENBLAS_NUM_THREADS: "1",
    OMP_NUM_THREADS: String(options.threads),
  };
  if (coretype === null) delete env["OPENBLAS_CORETYPE"];
  else env["OPENBLAS_CORETYPE"] = coretype;
  const args = [
    script,
    "--data",
    options.imagesFile,
    "--labels",
    options.labelsFile,
    "--threads",
    options.threads.join(","),
    "--lr",
    String(options.learningRate),
    ...options.cases.flatMap((c) => ["--case", `${c.model}:${c.batch}:${c.steps}:${c.warmup}:${c.repeats}`]),
  ];
  let stdout: string;
  try {
    stdout = await new Promise<string>((resolve, reject) => {
      execFile(PYTHON, args, { env, timeout: options.timeoutMs, maxBuffer: 1 << 20 }, (err, out, errOut) => {
        if (err)
          reject(new Error(`${errorMessage(err)}${errOut ? `: ${errOut.trim().split("\n").pop()}` : ""}`));
        else resolve(out);
      });
    });
  } catch (err) {
    return missing(`the PyTorch reference failed: ${errorMessage(err)}`);
  }
  let parsed: Partial<TorchReference>;
  try {
    parsed = JSON.parse(stdout.trim().split("\n").pop() ?? "") as Partial<TorchReference>;
  } catch {
    return missing(`the PyTorch reference printed no JSON: ${stdout.slice(0, 200)}`);
  }
  if (parsed.available !== true) return missing(parsed.reason ?? "the PyTorch reference is unavailable");
  return {
    available: true,
    python: PYTHON,
    torch: parsed.torch ?? null,
    torchThreadsTried: parsed.torchThreadsTried ?? null,
    runs: 1,
    blas: parsed.blas ?? null,
    openblasConfig: parsed.openblasConfig ?? null,
    coretype: parsed.coretype ?? null,
    openblasNumThreads: parsed.openblasNumThreads ?? null,
    results: parsed.results ?? [],
  };
}
