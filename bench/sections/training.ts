import { rmSync } from "node:fs";
import os from "node:os";
import { loadEmbeddedMnist } from "../../common/data/mnist.js";
import { buildModel, type ModelName } from "../../common/models/zoo.js";
import { type TrainData, trainLocal } from "../../common/train/trainer.js";
import { blasChoicesToTry, screenBlasChoices, searchTorchReference } from "../references/openblas-choices.js";
import {
  bestOf,
  type TorchCase,
  type TorchReference,
  writeTorchData,
} from "../references/torch-reference.js";
import { errorMessage, median, ratio, sig } from "../timing.js";
import { activateBenchBackend, type BackendStatus, benchBackendLabels, threadSetterFor } from "./backends.js";

/**
 * Local training throughput (examples/s) with fedsim's own trainer, models and data, on each
 * TensorFlow.js backend that loads, against PyTorch training the same architectures with the same
 * batch size, optimiser and loss on the same machine in the same run.
 */
export interface TrainingRow {
  model: ModelName;
  batch: number;
  backend: string;
  /** The WebGPU adapter (webgpu rows only), so a GPU's figures and a software rasterizer's are told apart. */
  adapter?: string;
  /**
   * The backend's thread count behind examplesPerSec, for backends that have one (native): like
   * the reference, each case keeps the faster of all cores and 1, since threads that spin-wait
   * collapse when other processes load the machine. Null for single-threaded backends.
   */
  threads?: number | null;
  examplesPerSec: number | null;
  pytorchExamplesPerSec: number | null;
  /** The torch thread count behind pytorchExamplesPerSec (the faster of 1 and all cores). */
  pytorchThreads: number | null;
  /** The OpenBLAS configuration behind pytorchExamplesPerSec ("auto" or a core family), the fastest tried. */
  pytorchBlas?: string | null;
  /** examplesPerSec ÷ pytorchExamplesPerSec: 1 means as fast as PyTorch, 0.5 half as fast. */
  ratio: number | null;
  /** Timed optimiser steps per repeat, and the number of repeats (median taken). */
  steps: number | null;
  repeats: number | null;
  status: "ok" | "skipped" | "failed";
  note?: string;
}

export type { BackendStatus } from "./backends.js";

export interface TrainingSection {
  rows: TrainingRow[];
  backends: BackendStatus[];
  reference: Omit<TorchReference, "results">;
  learningRate: number;
  data: string;
}

interface Plan {
  model: ModelName;
  batch: number;
  /** Untimed steps before timing: 0 for cases too slow to afford them, otherwise at least 2. */
  warmupSteps: number;
  /** Timed steps per repeat, lowered when the warm-up shows a step costs more than the budget allows. */
  steps: number;
  repeats: number;
  /** Seconds one repeat may take, judged from the warm-up. */
  budgetSeconds: number;
}

const MODELS: readonly ModelName[] = ["mnist-2nn", "mnist-cnn"];
const BATCHES = [10, 50] as const;
const LEARNING_RATE = 0.01;
/** Examples handed to PyTorch: enough to shuffle through, small enough to write quickly. */
const TORCH_EXAMPLES = 4000;

function plan(backend: string, model: ModelName, batch: number, quick: boolean): Plan | string {
  const cnn = model === "mnist-cnn";
  if (backend === "cpu" && cnn) {
    // The pure-JS cpu backend needs ~20-30 s for one CNN step (its Conv2DBackpropFilter is a plain
    // loop): one step at batch 10 tells the story, batch 50 would cost minutes.
    if (quick) return "skipped: too slow on the pure-JS cpu backend (--quick)";
    if (batch !== 10) return "skipped: too slow on the pure-JS cpu backend";
    return { model, batch, warmupSteps: 0, steps: 1, repeats: 1, budgetSeconds: 120 };
  }
  const repeats = quick ? 1 : 3;
  const budgetSeconds = quick ? 1.5 : 3;
  const warmupSteps = cnn ? 3 : 10;
  const steps = cnn ? (batch === 10 ? 40 : 12) : batch === 10 ? 200 : 80;
  return { model, batch, warmupSteps, steps, repeats, budgetSeconds };
}

function torchCases(quick: boolean): TorchCase[] {
  const cases: TorchCase[] = [];
  for (const model of MODELS) {
    for (const batch of BATCHES) {
      const cnn = model === "mnist-cnn";
      const steps = cnn ? (batch === 10 ? 60 : 20) : batch === 10 ? 500 : 200;
      cases.push({
        model,
        batch,
        steps: quick ? Math.ceil(steps / 3) : steps,
        warmup: cnn ? 5 : 20,
        repeats: quick ? 1 : 3,
      });
    }
  }
  return cases;
}

async function measureTfjs(data: TrainData, p: Plan): Promise<{ examplesPerSec: number; steps: number }> {
  const model = buildModel(p.model, { inputShape: data.exampleShape, numClasses: data.numClasses, seed: 1 });
  try {
    const base = { epochs: 1_000_000, batchSize: p.batch, learningRate: LEARNING_RATE, seed: 7 };
    let steps = p.steps;
    if (p.warmupSteps > 0) {
      // The first step carries one-off costs (kernel setup, allocation), so the cap is judged from
      // the steps after it; plan() gives at least 2 warm-up steps.
      const stepEnds: number[] = [];
      await trainLocal(model, data, {
        ...base,
        maxSteps: p.warmupSteps,
        onBatch: () => stepEnds.push(performance.now()),
      });
      const perStep = (stepEnds[stepEnds.length - 1] - stepEnds[0]) / 1000 / (stepEnds.length - 1);
      steps = Math.max(1, Math.min(p.steps, Math.floor(p.budgetSeconds / perStep)));
    }
    const rates: number[] = [];
    for (let r = 0; r < p.repeats; r++) {
      const started = performance.now();
      const result = await trainLocal(model, data, { ...base, seed: 7 + r, maxSteps: steps });
      const seconds = (performance.now() - started) / 1000;
      rates.push((result.steps * p.batch) / seconds);
    }
    return { examplesPerSec: median(rates), steps };
  } finally {
    model.dispose();
  }
}

export async function runTraining(options: {
  quick: boolean;
  log: (line: string) => void;
}): Promise<TrainingSection> {
  const { quick, log } = options;
  const mnist = loadEmbeddedMnist();
  const data: TrainData = mnist.train;

  const files = writeTorchData(data, TORCH_EXAMPLES, "fedsim-bench-");
  const cores = os.availableParallelism?.() ?? os.cpus().length;
  const choices = blasChoicesToTry();
  const referenceOptions = {
    imagesFile: files.images,
    labelsFile: files.labels,
    threads: cores > 1 ? [cores, 1] : [1],
    learningRate: LEARNING_RATE,
    cases: torchCases(quick),
    timeoutMs: 600_000,
  };
  const runReference = (when: string, tried: typeof choices) => {
    log(`training: PyTorch reference (${when}; OpenBLAS ${tried.map((c) => c.name).join(", ")})…`);
    return searchTorchReference(referenceOptions, tried, log);
  };
  try {
    // Every OpenBLAS configuration screened on short runs; the winners measured in full before and after
    // fedsim's runs, keeping each case's best: load from other processes on a shared machine then has to
    // persist through both to make the reference look slow.
    log(`training: screening OpenBLAS configurations ${choices.map((c) => c.name).join(", ")}…`);
    const screening = choices.length > 1 ? await screenBlasChoices(referenceOptions, choices, log) : null;
    const winners = screening?.winners ?? choices;
    const before = await runReference("before", winners);
    const rows = await measureBackends(data, quick, log);
    const torch = bestOf(before, await runReference("after", winners));
    torch.blasChoicesTried = choices.map((c) => c.name);
    torch.blasScreening = screening?.rows ?? null;
    if (!torch.available) log(`training: no PyTorch reference (${torch.reason}); ratios stay null`);
    for (const row of rows.rows) {
      const result = torch.results.find((r) => r.model === row.model && r.batch === row.batch);
      row.pytorchExamplesPerSec = sig(result?.examplesPerSec ?? null);
      row.pytorchThreads = result?.threads ?? null;
      row.pytorchBlas = result?.blasChoice ?? null;
      row.ratio = sig(ratio(row.examplesPerSec, result?.examplesPerSec ?? null), 3);
    }
    noteSlowCpuCnn(rows.rows);
    const { results: _results, ...reference } = torch;
    return {
      rows: rows.rows,
      backends: rows.backends,
      reference,
      learningRate: LEARNING_RATE,
      data: mnist.source,
    };
  } finally {
    rmSync(files.dir, { recursive: true, force: true });
  }
}

/** Every (backend, model, batch) case on fedsim's side; PyTorch figures are filled in afterwards. */
async function measureBackends(
  data: TrainData,
  quick: boolean,
  log: (line: string) => void,
): Promise<{ rows: TrainingRow[]; backends: BackendStatus[] }> {
  const rows: TrainingRow[] = [];
  const backends: BackendStatus[] = [];
  const cores = os.availableParallelism?.() ?? os.cpus().length;
  // Every backend the probe lists, so a new one shows up here once common/tf/backend.ts has it.
  for (const probe of await benchBackendLabels()) {
    const backend = probe.label;
    const loaded: BackendStatus = probe.available
      ? await activateBenchBackend(backend)
      : { backend, loaded: false, reason: probe.reason, kernels: [] };
    backends.push(loaded);
    // A backend that does not load gets no rows: the environment table says why.
    if (!loaded.loaded) continue;
    const setThreads = await threadSetterFor(backend);
    const threadCounts = cores > 1 ? [cores, 1] : [1];
    for (const model of MODELS) {
      for (const batch of BATCHES) {
        const row: TrainingRow = {
          model,
          batch,
          backend,
          examplesPerSec: null,
          pytorchExamplesPerSec: null,
          pytorchThreads: null,
          ratio: null,
          steps: null,
          repeats: null,
          status: "skipped",
          ...(loaded.adapter !== undefined ? { adapter: loaded.adapter } : {}),
        };
        rows.push(row);
        const p = plan(backend, model, batch, quick);
        if (typeof p === "string") {
          row.note = p;
          continue;
        }
        log(`training: ${model} batch ${batch} on ${backend}…`);
        try {
          let best: { examplesPerSec: number; steps: number; threads: number | null } | null = null;
          for (const threads of setThreads === null ? [null] : threadCounts) {
            if (threads !== null) setThreads?.(threads);
            const measured = await measureTfjs(data, p);
            if (best === null || measured.examplesPerSec > best.examplesPerSec)
              best = { ...measured, threads };
          }
          if (best === null) throw new Error("nothing measured");
          row.status = "ok";
          row.examplesPerSec = sig(best.examplesPerSec);
          row.threads = best.threads;
          row.steps = best.steps;
          row.repeats = p.repeats;
          if (p.warmupSteps === 0) {
            row.note = `one step without warm-up: ${(p.batch / best.examplesPerSec).toFixed(1)} s/step`;
          }
        } catch (err) {
          row.status = "failed";
          row.note = errorMessage(err);
        }
        log(
          `  ${row.status}: ${row.examplesPerSec ?? "-"} ex/s${row.threads ? ` (${row.threads} threads)` : ""}`,
        );
      }
    }
    // Back to the default (one per core) for whatever runs next in this process.
    setThreads?.(cores);
  }
  return { rows, backends };
}

/** The skipped cpu CNN rows quote the measured batch-10 step, so "too slow" has a number. */
function noteSlowCpuCnn(rows: TrainingRow[]): void {
  const measured = rows.find(
    (r) => r.backend === "cpu" && r.model === "mnist-cnn" && r.status === "ok" && r.examplesPerSec !== null,
  );
  if (measured?.examplesPerSec == null) return;
  const stepSeconds = measured.batch / measured.examplesPerSec;
  for (const row of rows) {
    if (row.backend === "cpu" && row.model === "mnist-cnn" && row.status === "skipped") {
      row.note = `${row.note ?? "skipped"} (one step at batch ${measured.batch} took ${stepSeconds.toFixed(1)} s)`;
    }
  }
}
