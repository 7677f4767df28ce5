import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { readFlatWeights } from "../../common/models/tf-weights.js";
import { buildModel, isModelName } from "../../common/models/zoo.js";
import { initBackend } from "../../common/tf/backend.js";
import { loadScenarioData } from "../../scenarios/data.js";
import { loadScenarioFile, type Scenario } from "../../scenarios/schema.js";
import { readCheckpoint } from "../../server/checkpoint.js";
import type { RoundRecord } from "../../server/round-record.js";
import { repoRoot } from "../paths.js";
import {
  AUTO_BLAS,
  type BlasChoice,
  defaultBlasChoice,
  runPythonJson,
} from "../references/torch-reference.js";
import { errorMessage, sig } from "../timing.js";
import {
  type CurvePoint,
  compareTimeToAccuracy,
  type TimeToAccuracyFigures,
  timeToTarget,
} from "./accuracy-curve.js";
import { encodeFedAvgExport, referenceTwinMismatch, scenarioPartitionIndices } from "./fedavg-export.js";

/**
 * Time to accuracy: the quickstart (FedAvg, 2NN, embedded MNIST, 10 IID clients, all sampled,
 * E=1, B=10, lr 0.05) run as a user runs it, `fedsim run scenarios/quickstart.yaml --out DIR` in its
 * own process (pool processes, Socket.IO on loopback), against bench/references/fedavg_reference.py
 * running FedAvg on the very same federation: fedsim's train/test arrays, partition indices and
 * initial weights are exported to a file the script reads. Both clocks are the wall clock from the
 * moment the bench launches the process to the end of the first round that reaches the target: start-up,
 * data loading and fedsim's pools connecting all count. PyTorch gets both cores, twice: clients one
 * after another in one process at the faster of all cores and 1 torch thread, and clients split over
 * one forked worker process per core; the faster variant is the reference.
 */
export interface TimeToAccuracyVariant {
  /** "1 process × N threads" or "N worker processes". */
  name: string;
  threads: number;
  workers: number;
  /** Seconds from launch to the target (the fastest run), null when no run reached it. */
  seconds: number | null;
  rounds: number | null;
  runs: number;
  curve: CurvePoint[] | null;
  reason?: string;
}

export interface TimeToAccuracySection extends TimeToAccuracyFigures {
  scenario: string;
  backend: string;
  processes: number | null;
  /** How both clocks run. */
  clock: "wall clock from process launch";
  /** Seconds from launching `fedsim run` to the start of its first round (process start-up, data, model). */
  fedsimFirstRoundStartSeconds: number | null;
  /** Seconds from launch until the `fedsim run` process exited (every round, the report written). */
  fedsimWallSeconds: number;
  /** Test accuracy of the initial global model on each side: equal when both start from the same weights. */
  initialAccuracy: { fedsim: number; pytorch: number | null };
  fedsimCurve: CurvePoint[];
  pytorchCurve: CurvePoint[] | null;
  pytorch: {
    available: boolean;
    reason?: string;
    torch?: string;
    /** The variant behind pytorchSeconds. */
    best?: string;
    variants?: TimeToAccuracyVariant[];
    /** The OpenBLAS configuration used ("auto" or a core family): the training section's winner for this model and batch. */
    blas?: string;
    openblasConfig?: string | null;
  };
}

const SCENARIO = "quickstart.yaml";

function targetOf(scenario: Scenario): number {
  const target = scenario.expect?.finalAccuracy?.gte;
  if (target === undefined) throw new Error(`${scenario.name} has no expect.finalAccuracy.gte to aim for`);
  return target;
}

/** The federation fedsim will run, as the file fedavg_reference.py reads. */
async function exportFederation(scenario: Scenario): Promise<Uint8Array> {
  if (!isModelName(scenario.model)) throw new Error(`model ${scenario.model} is not a zoo model`);
  const data = await loadScenarioData(scenario);
  // Built as startCoordinator builds the global model: same name, shapes and seed, same weights.
  await initBackend("auto");
  const model = buildModel(scenario.model, {
    inputShape: data.test.exampleShape,
    numClasses: data.test.numClasses,
    seed: scenario.seed,
  });
  try {
    const weights = await readFlatWeights(model);
    return encodeFedAvgExport({
      exampleShape: data.train.exampleShape,
      numClasses: data.train.numClasses,
      trainX: data.train.x,
      trainY: data.train.y,
      testX: data.test.x,
      testY: data.test.y,
      clientIndices: scenarioPartitionIndices(scenario, data.train),
      weightSpecs: weights.specs,
      initialWeights: weights.values,
    });
  } finally {
    model.dispose();
  }
}

interface ReferenceOutput {
  available?: boolean;
  reason?: string;
  torch?: string;
  threads?: number;
  workers?: number;
  openblasConfig?: string | null;
  initial?: { accuracy: number };
  rounds?: { round: number; wallTime: number; accuracy: number }[];
}

interface ReferenceRun {
  output: ReferenceOutput;
  /** Seconds from launch to each round's end. */
  curve: CurvePoint[];
}

interface Variant {
  threads: number;
  workers: number;
}

const variantName = (v: Variant) =>
  v.workers > 0
    ? `${v.workers} worker processes × 1 thread`
    : `1 process × ${v.threads} thread${v.threads === 1 ? "" : "s"}`;

/** Runs bench/references/fedavg_reference.py on the exported federation; a string says why it could not. */
async function runReference(
  file: string,
  scenario: Scenario,
  target: number,
  variant: Variant,
  blas: BlasChoice,
  timeoutMs: number,
): Promise<ReferenceRun | string> {
  const launched = Date.now();
  const output = await runPythonJson(
    "fedavg_reference.py",
    [
      ...["--data", file, "--model", scenario.model, "--rounds", String(scenario.rounds)],
      ...["--epochs", String(scenario.fit.epochs), "--batch", String(scenario.fit.batchSize)],
      ...["--lr", String(scenario.fit.learningRate), "--target", String(target)],
      ...["--threads", String(variant.threads), "--workers", String(variant.workers)],
      ...["--seed", String(scenario.seed), "--stop-at-target"],
    ],
    { torchThreads: [variant.threads], timeoutMs, blas },
  );
  if (typeof output === "string") {
    return Date.now() - launched >= timeoutMs
      ? `stopped after ${Math.round(timeoutMs / 1000)} s, twice the fastest run so far`
      : output;
  }
  const parsed = output as ReferenceOutput;
  if (parsed.available !== true) return parsed.reason ?? "the PyTorch reference is unavailable";
  const curve = (parsed.rounds ?? []).map((r) => ({
    round: r.round,
    seconds: (r.wallTime * 1000 - launched) / 1000,
    accuracy: r.accuracy,
  }));
  return { output: parsed, curve };
}

const reach = (run: ReferenceRun | string | undefined, target: number) =>
  run === undefined || typeof run === "string"
    ? Number.POSITIVE_INFINITY
    : (timeToTarget(run.curve, target)?.seconds ?? Number.POSITIVE_INFINITY);

/** The OpenBLAS configuration the training section found fastest for this model and batch, else the default. */
export function blasForCase(
  training: readonly { model: string; batch: number; pytorchBlas?: string | null }[] | null | undefined,
  model: string,
  batch: number,
): BlasChoice {
  const name = training?.find((r) => r.model === model && r.batch === batch && r.pytorchBlas)?.pytorchBlas;
  if (name === undefined || name === null) return defaultBlasChoice();
  return name === AUTO_BLAS.name ? AUTO_BLAS : { name, coretype: name };
}

/** `fedsim run` in its own process, as a user launches it; its curve is read from the run's checkpoint. */
async function runFedsim(
  scenarioFile: string,
  dir: string,
): Promise<{
  curve: CurvePoint[];
  firstRoundStart: number | null;
  wallSeconds: number;
  backend: string;
  initialAccuracy: number | null;
}> {
  const cli = path.join(repoRoot(), "dist", "cli", "index.js");
  const out = path.join(dir, "fedsim-run");
  const launched = Date.now();
  await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      [cli, "run", scenarioFile, "--out", out],
      { cwd: repoRoot(), timeout: 900_000, maxBuffer: 1 << 24 },
      (err, text, errText) => {
        if (err)
          reject(
            new Error(`fedsim run failed: ${errorMessage(err)} ${errText.trim().split("\n").pop() ?? ""}`),
          );
        else resolve(text);
      },
    );
  });
  const wallSeconds = (Date.now() - launched) / 1000;
  // The checkpoint, written after every round, keeps each round's record with its wall-clock start.
  const records = (await readCheckpoint(out)).header.records as unknown as RoundRecord[];
  const curve = records.map((r) => ({
    round: r.round,
    seconds: (r.startedAt + r.seconds * 1000 - launched) / 1000,
    accuracy: r.accuracy,
  }));
  const summary = JSON.parse(readFileSync(path.join(out, "summary.json"), "utf8")) as {
    backend?: string;
    initial?: { accuracy?: number };
  };
  return {
    curve,
    firstRoundStart: records.length > 0 ? (records[0].startedAt - launched) / 1000 : null,
    wallSeconds,
    backend: summary.backend ?? "?",
    initialAccuracy: summary.initial?.accuracy ?? null,
  };
}

export async function runTimeToAccuracy(options: {
  quick: boolean;
  log: (line: string) => void;
  /** The training section's rows, for the OpenBLAS configuration that won this model and batch. */
  training?: readonly { model: string; batch: number; pytorchBlas?: string | null }[] | null;
}): Promise<TimeToAccuracySection> {
  const { log } = options;
  const scenarioFile = path.join(repoRoot(), "scenarios", SCENARIO);
  const scenario = await loadScenarioFile(scenarioFile);
  const mismatch = referenceTwinMismatch(scenario);
  if (mismatch !== null) throw new Error(`${SCENARIO}: ${mismatch}`);
  const target = targetOf(scenario);
  const cores = os.availableParallelism?.() ?? os.cpus().length;
  const blas = blasForCase(options.training, scenario.model, scenario.fit.batchSize);
  // The likeliest fastest first: a run that takes over twice the fastest so far is stopped (it cannot win),
  // which spares the suite minutes of spin-waiting torch threads on a loaded machine.
  const variants: Variant[] = [
    { threads: 1, workers: 0 },
    ...(cores > 1 ? [{ threads: 1, workers: cores }] : []),
    ...(cores > 1 ? [{ threads: cores, workers: 0 }] : []),
  ];
  const runs = new Map<string, (ReferenceRun | string)[]>(variants.map((v) => [variantName(v), []]));
  const dir = mkdtempSync(path.join(os.tmpdir(), "fedsim-tta-"));
  let fedsim: Awaited<ReturnType<typeof runFedsim>>;
  try {
    const file = path.join(dir, "federation.bin");
    writeFileSync(file, await exportFederation(scenario));
    // PyTorch runs before and after fedsim (before only with --quick), keeping each variant's fastest:
    // load from other processes on a shared machine then has to last through all of them to make
    // the reference look slow.
    const referencePass = async (when: string) => {
      for (const variant of variants) {
        log(`timeToAccuracy: PyTorch FedAvg, ${variantName(variant)}, OpenBLAS ${blas.name} (${when})…`);
        const fastest = Math.min(...[...runs.values()].flat().map((r) => reach(r, target)));
        const timeoutMs = Number.isFinite(fastest) ? Math.max(60_000, 2 * fastest * 1000) : 900_000;
        const run = await runReference(file, scenario, target, variant, blas, timeoutMs);
        runs.get(variantName(variant))?.push(run);
        // A missing torch fails every run alike.
        if (typeof run === "string" && run.includes("not found")) return false;
      }
      return true;
    };
    const torchThere = await referencePass("before");
    log(`timeToAccuracy: fedsim run ${SCENARIO} --out …`);
    fedsim = await runFedsim(scenarioFile, dir);
    if (!options.quick && torchThere) await referencePass("after");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  const summaries: TimeToAccuracyVariant[] = variants.map((v) => {
    const tried = runs.get(variantName(v)) ?? [];
    const best = tried.reduce<ReferenceRun | string | undefined>(
      (a, b) => (reach(b, target) < reach(a, target) || a === undefined ? b : a),
      undefined,
    );
    const ok = best !== undefined && typeof best !== "string" ? best : null;
    const hit = ok === null ? null : timeToTarget(ok.curve, target);
    return {
      name: variantName(v),
      threads: v.threads,
      workers: v.workers,
      seconds: sig(hit?.seconds ?? null),
      rounds: hit?.round ?? null,
      runs: tried.filter((r) => typeof r !== "string").length,
      curve: ok === null ? null : ok.curve.map(roundPoint),
      ...(ok === null ? { reason: typeof best === "string" ? best : "did not run" } : {}),
    };
  });
  const allRuns = [...runs.values()].flat().filter((r): r is ReferenceRun => typeof r !== "string");
  const fastest = allRuns.reduce<ReferenceRun | undefined>(
    (a, b) => (a === undefined || reach(b, target) < reach(a, target) ? b : a),
    undefined,
  );
  const bestVariant = summaries.find(
    (v) => v.seconds !== null && v.seconds === Math.min(...summaries.map((s) => s.seconds ?? Infinity)),
  );
  const pytorchCurve = fastest?.curve ?? null;
  const figures = compareTimeToAccuracy(fedsim.curve, pytorchCurve, target);
  const failure = [...runs.values()].flat().find((r): r is string => typeof r === "string");
  if (fastest === undefined)
    log(`timeToAccuracy: no PyTorch reference (${failure ?? "not run"}); the ratio stays null`);
  log(
    `timeToAccuracy: fedsim ${figures.fedsimSeconds?.toFixed(2) ?? "–"} s (round ${figures.fedsimRounds ?? "–"}), ` +
      `PyTorch ${figures.pytorchSeconds?.toFixed(2) ?? "–"} s (round ${figures.pytorchRounds ?? "–"}, ${bestVariant?.name ?? "–"}), from launch`,
  );
  return {
    ratio: sig(figures.ratio, 3),
    fedsimSeconds: sig(figures.fedsimSeconds),
    pytorchSeconds: sig(figures.pytorchSeconds),
    target,
    fedsimRounds: figures.fedsimRounds,
    pytorchRounds: figures.pytorchRounds,
    scenario: scenario.name,
    backend: fedsim.backend,
    processes: scenario.processes ?? Math.min(cores, scenario.clients),
    clock: "wall clock from process launch",
    fedsimFirstRoundStartSeconds: sig(fedsim.firstRoundStart),
    fedsimWallSeconds: sig(fedsim.wallSeconds) ?? 0,
    initialAccuracy: {
      fedsim: sig(fedsim.initialAccuracy) ?? 0,
      pytorch: sig(fastest?.output.initial?.accuracy ?? null),
    },
    fedsimCurve: fedsim.curve.map(roundPoint),
    pytorchCurve: pytorchCurve?.map(roundPoint) ?? null,
    pytorch:
      fastest === undefined
        ? { available: false, reason: failure ?? "not run", variants: summaries }
        : {
            available: true,
            ...(fastest.output.torch !== undefined ? { torch: fastest.output.torch } : {}),
            ...(bestVariant !== undefined ? { best: bestVariant.name } : {}),
            variants: summaries,
            blas: blas.name,
            openblasConfig: fastest.output.openblasConfig ?? null,
          },
  };
}

function roundPoint(p: CurvePoint): CurvePoint {
  return { round: p.round, seconds: sig(p.seconds) ?? 0, accuracy: sig(p.accuracy) ?? 0 };
}
