import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { TrainData } from "../../common/train/trainer.js";
import { cpuFlags } from "../environment.js";
import { errorMessage } from "../timing.js";

/**
 * Runs bench/references/torch_reference.py, the PyTorch reference for the training section, in its own
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
  /** The OpenBLAS configuration of the run that gave it ("auto" or a core family; see openblas-choices.ts). */
  blasChoice?: string;
  /** openblas_get_config() in that run: the kernels OpenBLAS really used. */
  openblasConfig?: string | null;
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
  /** The OpenBLAS configurations tried (each in its own process); each case keeps its fastest. */
  blasChoicesTried?: string[];
  /** Every configuration's short screening run (training section), which picked the ones measured in full. */
  blasScreening?:
    | { blas: string; model: string; batch: number; threads: number; examplesPerSec: number }[]
    | null;
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
  const tried = [...new Set([...(a.blasChoicesTried ?? []), ...(b.blasChoicesTried ?? [])])];
  return { ...a, runs: a.runs + b.runs, blasChoicesTried: tried, results };
}

/**
 * An OpenBLAS configuration for a reference process: `coretype` null is OpenBLAS's own detection, with
 * OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE both removed from the child's environment; otherwise
 * OPENBLAS_CORETYPE=coretype and the inherited OPENBLAS_L2_SIZE.
 */
export interface BlasChoice {
  name: string;
  coretype: string | null;
}

export const AUTO_BLAS: BlasChoice = { name: "auto", coretype: null };

/** SkylakeX with AVX-512, Haswell with AVX2, otherwise OpenBLAS's own detection. */
export function chooseCoretype(): string | null {
  const override = process.env["FEDSIM_BENCH_OPENBLAS_CORETYPE"];
  if (override !== undefined) return override === "" ? null : override;
  const flags = cpuFlags();
  if (flags.avx512f) return "SkylakeX";
  if (flags.avx2) return "Haswell";
  return null;
}

/** The configuration a single reference run uses when nothing better is known: chooseCoretype()'s. */
export function defaultBlasChoice(): BlasChoice {
  const coretype = chooseCoretype();
  return coretype === null ? AUTO_BLAS : { name: coretype, coretype };
}

/** Where a Python reference lives: compiled to dist/bench/references/, the scripts stay in bench/references/. */
export function scriptPath(name: string): string | undefined {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, name), path.join(here, "..", "..", "..", "bench", "references", name)];
  return candidates.find((file) => existsSync(file));
}

/**
 * The environment of a reference run: OPENBLAS_NUM_THREADS=1 (torch's own threads do the
 * parallel work), OPENBLAS_CORETYPE from chooseCoretype(). For the child process only.
 */
export function referenceEnv(
  torchThreads: readonly number[],
  blas: BlasChoice = defaultBlasChoice(),
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    OPENBLAS_NUM_THREADS: "1",
    OMP_NUM_THREADS: String(Math.max(1, ...torchThreads)),
  };
  if (blas.coretype === null) {
    // Auto-detection: a cache size set for another core family would skew OpenBLAS's own choice.
    delete env["OPENBLAS_CORETYPE"];
    delete env["OPENBLAS_L2_SIZE"];
  } else env["OPENBLAS_CORETYPE"] = blas.coretype;
  return env;
}

/**
 * Runs one of the suite's Python scripts with PYTHON and the reference environment, and parses
 * the last line it prints as JSON. Resolves to a string saying why when anything fails.
 */
export async function runPythonJson(
  scriptName: string,
  args: readonly string[],
  options: { torchThreads: readonly number[]; timeoutMs: number; blas?: BlasChoice },
): Promise<Record<string, unknown> | string> {
  const script = scriptPath(scriptName);
  if (script === undefined) return `bench/${scriptName} not found`;
  if (!existsSync(PYTHON)) return `${PYTHON} not found (install python3-torch)`;
  let stdout: string;
  try {
    stdout = await new Promise<string>((resolve, reject) => {
      execFile(
        PYTHON,
        [script, ...args],
        {
          env: referenceEnv(options.torchThreads, options.blas),
          timeout: options.timeoutMs,
          maxBuffer: 1 << 22,
        },
        (err, out, errOut) => {
          if (err)
            reject(new Error(`${errorMessage(err)}${errOut ? `: ${errOut.trim().split("\n").pop()}` : ""}`));
          else resolve(out);
        },
      );
    });
  } catch (err) {
    return `${scriptName} failed: ${errorMessage(err)}`;
  }
  try {
    const parsed: unknown = JSON.parse(stdout.trim().split("\n").pop() ?? "");
    if (parsed === null || typeof parsed !== "object") throw new Error("not an object");
    return parsed as Record<string, unknown>;
  } catch {
    return `${scriptName} printed no JSON: ${stdout.slice(0, 200)}`;
  }
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
  blas?: BlasChoice;
}): Promise<TorchReference> {
  const args = [
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
  const blas = options.blas ?? defaultBlasChoice();
  const output = await runPythonJson("torch_reference.py", args, {
    torchThreads: options.threads,
    timeoutMs: options.timeoutMs,
    blas,
  });
  if (typeof output === "string") return missing(`the PyTorch reference failed: ${output}`);
  const parsed = output as Partial<TorchReference>;
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
    blasChoicesTried: [blas.name],
    results: (parsed.results ?? []).map((r) => ({
      ...r,
      blasChoice: blas.name,
      openblasConfig: parsed.openblasConfig ?? null,
    })),
  };
}

/**
 * The first `maxExamples` images (raw float32) and labels (raw int32) of `data`, written to a new
 * temporary folder for the PyTorch scripts; the caller removes `dir`.
 */
export function writeTorchData(
  data: TrainData,
  maxExamples: number,
  prefix: string,
): { dir: string; images: string; labels: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  const n = Math.min(maxExamples, data.n);
  const size = data.x.length / data.n;
  const images = path.join(dir, "images.f32");
  const labels = path.join(dir, "labels.i32");
  const x = data.x.subarray(0, n * size);
  const y = data.y.subarray(0, n);
  writeFileSync(images, new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
  writeFileSync(labels, new Uint8Array(y.buffer, y.byteOffset, y.byteLength));
  return { dir, images, labels };
}
