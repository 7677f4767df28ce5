import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { readFlatWeights } from "../../common/models/tf-weights.js";
import { buildModel, isModelName } from "../../common/models/zoo.js";
import { initBackend } from "../../common/tf/backend.js";
import { loadScenarioData } from "../../scenarios/data.js";
import { runScenario } from "../../scenarios/runner.js";
import { loadScenarioFile, type Scenario } from "../../scenarios/schema.js";
import { repoRoot } from "../paths.js";
import { runPythonJson } from "../references/torch-reference.js";
import { sig } from "../timing.js";
import {
  type CurvePoint,
  compareTimeToAccuracy,
  curveFromDurations,
  type TimeToAccuracyFigures,
  timeToTarget,
} from "./accuracy-curve.js";
import { encodeFedAvgExport, referenceTwinMismatch, scenarioPartitionIndices } from "./fedavg-export.js";

/**
 * Time to accuracy: the quickstart (FedAvg, 2NN, embedded MNIST, 10 IID clients, all sampled,
 * E=1, B=10, lr 0.05) run by runScenario as `fedsim run` runs it (pool processes, Socket.IO on
 * loopback), against bench/references/fedavg_reference.py running FedAvg in one PyTorch process on the very
 * same federation: fedsim's train/test arrays, partition indices and initial weights are exported
 * to a file the script reads. Both clocks start when the first round begins: fedsim's first round
 * loses the time it waited for its pool processes to connect (from the run's timeline), PyTorch's
 * clock starts after its data and model are ready.
 */
export interface TimeToAccuracySection extends TimeToAccuracyFigures {
  scenario: string;
  backend: string;
  processes: number | null;
  /** Seconds fedsim's first round waited for the pool processes (taken off its clock); null if unknown. */
  fedsimStartupSeconds: number | null;
  /** runScenario's whole wall time, startup and every round included. */
  fedsimWallSeconds: number;
  /** Test accuracy of the initial global model on each side: equal when both start from the same weights. */
  initialAccuracy: { fedsim: number; pytorch: number | null };
  fedsimCurve: CurvePoint[];
  pytorchCurve: CurvePoint[] | null;
  pytorch: {
    available: boolean;
    reason?: string;
    torch?: string;
    /** The torch thread count of the fastest run. */
    threads?: number;
    /** Runs of the reference (each thread count, before and after fedsim); the fastest is kept. */
    runs?: number;
    openblasConfig?: string | null;
    coretype?: string | null;
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

/** Seconds the first round spent before its first fit request, from the summary's timeline when it has one. */
function firstRoundWait(summary: unknown): number | null {
  const timeline = (summary as { timeline?: { round: number; startSeconds: number }[] }).timeline;
  if (!Array.isArray(timeline)) return null;
  const starts = timeline.filter((t) => t.round === 1).map((t) => t.startSeconds);
  return starts.length > 0 ? Math.min(...starts) : null;
}

interface ReferenceOutput {
  available?: boolean;
  reason?: string;
  torch?: string;
  threads?: number;
  openblasConfig?: string | null;
  coretype?: string | null;
  initial?: { accuracy: number };
  rounds?: CurvePoint[];
}

/** Runs bench/references/fedavg_reference.py on the exported federation; a string says why it could not. */
async function runReference(
  file: string,
  scenario: Scenario,
  target: number,
  threads: number,
): Promise<ReferenceOutput | string> {
  const output = await runPythonJson(
    "fedavg_reference.py",
    [
      ...["--data", file, "--model", scenario.model, "--rounds", String(scenario.rounds)],
      ...["--epochs", String(scenario.fit.epochs), "--batch", String(scenario.fit.batchSize)],
      ...["--lr", String(scenario.fit.learningRate), "--target", String(target)],
      ...["--threads", String(threads), "--seed", String(scenario.seed)],
    ],
    { torchThreads: [threads], timeoutMs: 900_000 },
  );
  if (typeof output === "string") return output;
  const parsed = output as ReferenceOutput;
  return parsed.available === true ? parsed : (parsed.reason ?? "the PyTorch reference is unavailable");
}

/** The run that reached the target soonest; a failure's reason when every run failed. */
function fastestReference(
  runs: readonly (ReferenceOutput | string)[],
  target: number,
): ReferenceOutput | string {
  const reach = (r: ReferenceOutput) =>
    timeToTarget(r.rounds ?? [], target)?.seconds ?? Number.POSITIVE_INFINITY;
  let best: ReferenceOutput | string = runs[0] ?? "the PyTorch reference did not run";
  for (const run of runs) {
    if (typeof run === "string") continue;
    if (typeof best === "string" || reach(run) < reach(best)) best = run;
  }
  return best;
}

/**
 * The reference once per torch thread count (all cores, then 1), as the training reference picks
 * the faster of both: torch's spinning intra-op threads collapse when other processes load the machine.
 */
async function referenceRuns(
  file: string,
  scenario: Scenario,
  target: number,
  threadCounts: readonly number[],
): Promise<(ReferenceOutput | string)[]> {
  const runs: (ReferenceOutput | string)[] = [];
  for (const threads of threadCounts) {
    const run = await runReference(file, scenario, target, threads);
    runs.push(run);
    // A missing torch fails every run alike: no need to try the others.
    if (typeof run === "string") break;
  }
  return runs;
}

export async function runTimeToAccuracy(options: {
  quick: boolean;
  log: (line: string) => void;
}): Promise<TimeToAccuracySection> {
  const { log } = options;
  const scenario = await loadScenarioFile(path.join(repoRoot(), "scenarios", SCENARIO));
  const mismatch = referenceTwinMismatch(scenario);
  if (mismatch !== null) throw new Error(`${SCENARIO}: ${mismatch}`);
  const target = targetOf(scenario);
  const cores = os.availableParallelism?.() ?? os.cpus().length;
  const dir = mkdtempSync(path.join(os.tmpdir(), "fedsim-tta-"));
  let reference: ReferenceOutput | string;
  let pytorchRuns = 0;
  let summary: Awaited<ReturnType<typeof runScenario>>;
  try {
    const file = path.join(dir, "federation.bin");
    writeFileSync(file, await exportFederation(scenario));
    // PyTorch runs before and after fedsim (before only with --quick), keeping the fastest run:
    // load from other processes on a shared machine then has to last through all of them to
    // make the reference look slow.
    const threadCounts = cores > 1 ? [cores, 1] : [1];
    log(`timeToAccuracy: PyTorch FedAvg on the exported federation (${scenario.rounds} rounds, before)…`);
    const runs = await referenceRuns(file, scenario, target, threadCounts);
    log(`timeToAccuracy: fedsim run ${scenario.name}…`);
    summary = await runScenario(scenario, { log: () => undefined });
    if (!options.quick && typeof runs[0] !== "string") {
      log("timeToAccuracy: PyTorch FedAvg (after)…");
      runs.push(...(await referenceRuns(file, scenario, target, threadCounts)));
    }
    pytorchRuns = runs.filter((r) => typeof r !== "string").length;
    reference = fastestReference(runs, target);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const ref = typeof reference === "string" ? null : reference;
  if (ref === null) log(`timeToAccuracy: no PyTorch reference (${reference}); the ratio stays null`);

  const wait = firstRoundWait(summary);
  const fedsimCurve = curveFromDurations(summary.rounds, wait ?? 0);
  const pytorchCurve = ref === null ? null : (ref.rounds ?? []);
  const figures = compareTimeToAccuracy(fedsimCurve, pytorchCurve, target);
  const round = (p: CurvePoint): CurvePoint => ({
    round: p.round,
    seconds: sig(p.seconds) ?? 0,
    accuracy: sig(p.accuracy) ?? 0,
  });
  log(
    `timeToAccuracy: fedsim ${figures.fedsimSeconds?.toFixed(2) ?? "–"} s (round ${figures.fedsimRounds ?? "–"}), ` +
      `PyTorch ${figures.pytorchSeconds?.toFixed(2) ?? "–"} s (round ${figures.pytorchRounds ?? "–"})`,
  );
  return {
    ratio: sig(figures.ratio, 3),
    fedsimSeconds: sig(figures.fedsimSeconds),
    pytorchSeconds: sig(figures.pytorchSeconds),
    target,
    fedsimRounds: figures.fedsimRounds,
    pytorchRounds: figures.pytorchRounds,
    scenario: scenario.name,
    backend: summary.backend,
    processes: scenario.processes ?? Math.min(cores, scenario.clients),
    fedsimStartupSeconds: sig(wait),
    fedsimWallSeconds: sig(summary.seconds) ?? 0,
    initialAccuracy: {
      fedsim: sig(summary.initial.accuracy) ?? 0,
      pytorch: sig(ref?.initial?.accuracy ?? null),
    },
    fedsimCurve: fedsimCurve.map(round),
    pytorchCurve: pytorchCurve?.map(round) ?? null,
    pytorch:
      ref === null
        ? { available: false, reason: String(reference) }
        : {
            available: true,
            ...(ref.torch !== undefined ? { torch: ref.torch } : {}),
            ...(ref.threads !== undefined ? { threads: ref.threads } : {}),
            runs: pytorchRuns,
            openblasConfig: ref.openblasConfig ?? null,
            coretype: ref.coretype ?? null,
          },
  };
}
