import {
  AUTO_BLAS,
  type BlasChoice,
  bestOf,
  runTorchReference,
  type TorchCase,
  type TorchReference,
} from "./torch-reference.js";

/**
 * The OpenBLAS configurations the training reference searches. OpenBLAS reads OPENBLAS_CORETYPE once,
 * when it loads, so each configuration is its own process. No single one is best everywhere: on a
 * Zen 5 machine auto-detection won the 2NN at batch 50 while SkylakeX won elsewhere, so every case keeps
 * its fastest configuration (and thread count) and the results say which won. These variables are set
 * for the reference's child processes only, never for fedsim, its tests or CI.
 */
export const EXPLICIT_CORETYPES = ["Haswell", "SkylakeX", "Zen", "Cooperlake", "Sandybridge"] as const;

/** Auto-detection, then the explicit families; FEDSIM_BENCH_OPENBLAS_CORETYPE pins one ("" = auto). */
export function blasChoicesToTry(): BlasChoice[] {
  const pinned = process.env["FEDSIM_BENCH_OPENBLAS_CORETYPE"];
  if (pinned !== undefined) return [pinned === "" ? AUTO_BLAS : { name: pinned, coretype: pinned }];
  return [AUTO_BLAS, ...EXPLICIT_CORETYPES.map((coretype) => ({ name: coretype, coretype }))];
}

/** The configurations that gave at least one case its fastest rate. */
export function winningChoices(reference: TorchReference, tried: readonly BlasChoice[]): BlasChoice[] {
  const names = new Set(reference.results.map((r) => r.blasChoice));
  return tried.filter((choice) => names.has(choice.name));
}

type ReferenceOptions = Omit<Parameters<typeof runTorchReference>[0], "blas">;

/** One configuration's examples/s per case in the screening pass (the report shows what lost, and by how much). */
export interface ScreeningRow {
  blas: string;
  model: string;
  batch: number;
  threads: number;
  examplesPerSec: number;
}

/** The reference under each configuration in turn, each case keeping its fastest. */
export async function searchTorchReference(
  options: ReferenceOptions,
  choices: readonly BlasChoice[],
  log: (line: string) => void,
): Promise<TorchReference> {
  let best: TorchReference | undefined;
  for (const blas of choices) {
    const run = await runTorchReference({ ...options, blas });
    log(
      run.available
        ? `  OpenBLAS ${blas.name}: ${run.results.map((r) => `${r.model} b${r.batch} ${Math.round(r.examplesPerSec)} (${r.threads} thr)`).join(", ")}`
        : `  OpenBLAS ${blas.name}: ${run.reason}`,
    );
    best = best === undefined ? run : bestOf(best, run);
    // A missing torch fails every configuration alike.
    if (!run.available && run.reason?.includes("not found")) break;
  }
  if (best === undefined) throw new Error("no OpenBLAS configuration to try");
  return best;
}

/** The cases cut short for screening: a fifth of the timed steps, one repeat, a short warm-up. */
export function screeningCases(cases: readonly TorchCase[]): TorchCase[] {
  return cases.map((c) => ({
    ...c,
    steps: Math.max(2, Math.ceil(c.steps / 5)),
    warmup: Math.min(c.warmup, 3),
    repeats: 1,
  }));
}

/**
 * Screens every configuration on short runs, then returns the ones that won a case. On a shared 2-core
 * machine the full runs of six configurations, before and after fedsim's, would take longer than the rest
 * of the suite; the winners are then measured in full.
 */
export async function screenBlasChoices(
  options: ReferenceOptions,
  choices: readonly BlasChoice[],
  log: (line: string) => void,
): Promise<{ winners: BlasChoice[]; rows: ScreeningRow[] }> {
  const rows: ScreeningRow[] = [];
  let best: TorchReference | undefined;
  for (const blas of choices) {
    const run = await searchTorchReference({ ...options, cases: screeningCases(options.cases) }, [blas], log);
    for (const r of run.results) {
      rows.push({
        blas: blas.name,
        model: r.model,
        batch: r.batch,
        threads: r.threads,
        examplesPerSec: Math.round(r.examplesPerSec),
      });
    }
    best = best === undefined ? run : bestOf(best, run);
    if (!run.available && run.reason?.includes("not found")) break;
  }
  const winners = best === undefined ? [] : winningChoices(best, choices);
  return { winners: winners.length > 0 ? winners : choices.slice(0, 1), rows };
}
