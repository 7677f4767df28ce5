import type { ParallelSection } from "../sections/parallel.js";
import type { PrivacyPerRound } from "../sections/privacy.js";
import type { RoundOverheadSection } from "../sections/round-overhead.js";
import type { TimeToAccuracySection } from "../sections/time-to-accuracy.js";
import { type Cell, fixed, ratioText, type Table } from "./report-format.js";
import type { TargetResult } from "./targets.js";

/** The tables of the sections added for issue 6, and the targets table; method notes included. */

export function targetsTable(targets: readonly TargetResult[]): Table {
  const goal = (t: TargetResult) =>
    `${t.comparison === ">=" ? "≥" : "≤"} ${t.threshold}×${t.stretch !== undefined ? ` (stretch ${t.stretch}×)` : ""}`;
  const status = (t: TargetResult) => {
    if (t.status !== "met" || t.stretchMet === undefined) return t.status;
    return t.stretchMet ? "met, stretch met" : "met, stretch missed";
  };
  return {
    title: "Targets",
    headers: ["target", "goal", "measured", "status", "figure", "detail"],
    rows: targets.map((t) => [
      t.description,
      goal(t),
      t.measured === null ? null : `${ratioText(t.measured)}×`,
      status(t),
      t.figure,
      t.detail || null,
    ]),
    notes: [
      "Every target is a ratio against a reference measured in the same run (see each section below); " +
        "`targets` in latest.json holds the same table.",
      "Sections carried over from an earlier run (see Measured above) count with their older figures.",
    ],
  };
}

export function roundOverheadTable(s: RoundOverheadSection): Table {
  const phases = Object.entries(s.phases)
    .map(([phase, seconds]) => `${phase} ${seconds} s`)
    .join(", ");
  return {
    title: `Round overhead (${s.clients} clients, ${s.model}: ${s.params.toLocaleString("en-US")} parameters, ${(s.payloadBytes / 1e6).toFixed(2)} MB each way per client)`,
    headers: ["what", "seconds"],
    rows: [
      ["round wall time (median)", s.roundSeconds],
      ["slowest client's training", s.slowestTrainSeconds],
      ["all clients' training (one after another)", s.totalTrainSeconds],
      ["overhead = round − training on the critical path", s.overheadSeconds],
      ["raw Socket.IO: model down to each client, update back up", s.rawTransferSeconds],
      ["ratio = overhead ÷ raw transfer", ratioText(s.ratio)],
    ],
    notes: [
      `A real coordinator and ${s.clients} real ClientNodes over Socket.IO on loopback, all in one process on the ` +
        `${s.backend} backend; each client trains one SGD step on ${s.examplesPerClient} examples, the server ` +
        `evaluates ${s.testExamples ?? 20} test examples. Median of ${s.timedRounds} rounds after ${s.warmupRounds} warm-up round(s).`,
      `The in-process clients share one model and train one after another (layout "${s.layout}"), so the training ` +
        "the round waits for is every client's, not only the slowest's; it is subtracted whole. Each client's " +
        "training time is the trainer's own (fit metrics `seconds`), read by wrapping the ModelWorkbench.",
      "The reference sends the same bytes the same way with plain Socket.IO in the same process: one emit of the " +
        "model per client, each client answers with an update of the same size as soon as its download arrives; " +
        "median of several, timed before and after the rounds, the faster kept.",
      `Round phases (median s): ${phases || "–"}.`,
      ...(s.recordTrainSeconds !== null
        ? [
            `Cross-check: the round records' clients[].trainSeconds sum to ${s.recordTrainSeconds} s per round.`,
          ]
        : []),
      "Goal: ratio ≤ 1.2.",
    ],
  };
}

/** "1.470–1.790 (1.47, 1.62, …)": the per-repeat speedups in the order measured, for results that have them. */
function speedupSpread(
  range: { min: number; max: number } | null | undefined,
  speedups?: readonly number[],
): string {
  if (range === null || range === undefined) return "–";
  const each = speedups !== undefined && speedups.length > 0 ? ` (${speedups.join(", ")})` : "";
  return `${ratioText(range.min)}–${ratioText(range.max)}${each}`;
}

export function parallelTable(s: ParallelSection): Table {
  // Results written before the PyTorch reference existed lack its fields.
  const py = s.pytorch ?? null;
  const pyCell = (value: string | number | null | undefined) => (py === null ? "–" : value);
  return {
    title: `Parallelism (${s.model}, batch ${s.batch}, ${s.backend} backend, ${s.cores} cores)`,
    headers: ["what", "fedsim", "PyTorch"],
    rows: [
      ["one process training alone, examples/s", s.oneClientExamplesPerSec, pyCell(py?.oneExamplesPerSec)],
      ["two processes at once, examples/s", s.twoClientsExamplesPerSec, pyCell(py?.twoExamplesPerSec)],
      ["speedup (median of per-repeat ratios)", ratioText(s.speedup), pyCell(ratioText(py?.speedup))],
      [
        "per-repeat speedups, min–max (each)",
        speedupSpread(s.speedupRange, s.speedups),
        pyCell(speedupSpread(py?.speedupRange, py?.speedups)),
      ],
      [
        "cores kept busy: alone / together (CPU s ÷ wall s)",
        `${s.coresUsed?.one ?? "–"} / ${s.coresUsed?.two ?? "–"}`,
        pyCell(`${py?.coresUsed.one ?? "–"} / ${py?.coresUsed.two ?? "–"}`),
      ],
      ["fedsim speedup ÷ PyTorch speedup", ratioText(s.ratioToPytorch), null],
    ],
    notes: [
      "Two forked processes (bench/sections/parallel-worker.ts), each with its own backend, model and data, like the " +
        "pool processes of `fedsim run`; both warm up first. Alone: one process trains while the other idles. " +
        "At once: both train together; their rate is both processes' examples over the wall time from the first " +
        "start to the last end. Each process gets FEDSIM_NATIVE_THREADS = cores ÷ 2 " +
        `(${s.threadsPerProcess ?? "?"}), the share of one of 2 pool processes, alone or not.`,
      `${s.repeats} repeats of ${s.stepsPerClient} SGD steps per process, each timing alone and together back to back ` +
        "(alternating which goes first); speedup = the median of the per-repeat ratios, so a drift in the machine's " +
        "speed cancels within a repeat. Goal: fedsim speedup ≥ 1.9 on 2 cores.",
      py !== null
        ? `PyTorch reference: the same protocol in the same run, interleaved repeat by repeat with fedsim's: two ` +
          `bench/references/torch_parallel.py processes (PyTorch ${py.torch ?? "?"}, ${py.threadsPerProcess} torch thread and ` +
          `OPENBLAS_NUM_THREADS=1 each, ${py.stepsPerProcess} steps per run) training the same CNN with plain SGD; ` +
          "its speedup is what two processes sharing this machine's caches and memory bandwidth allow."
        : `No PyTorch reference: ${s.pytorchReason ?? "not measured"}.`,
      "Cores kept busy near 1 alone and 2 together mean the processes had the machine; less than that together " +
        "means other processes held the cores, and the speedup then measures the machine's load, not fedsim.",
    ],
  };
}

export function timeToAccuracyTable(s: TimeToAccuracySection): Table {
  const rounds = Math.max(s.fedsimCurve.length, s.pytorchCurve?.length ?? 0);
  const rows: Cell[][] = [];
  for (let i = 0; i < rounds; i++) {
    const f = s.fedsimCurve[i];
    const p = s.pytorchCurve?.[i];
    rows.push([i + 1, f?.seconds, fixed(f?.accuracy, 4), p?.seconds, fixed(p?.accuracy, 4)]);
  }
  const py = s.pytorch;
  const variants = (py.variants ?? []).map(
    (v) =>
      `${v.name}: ${v.seconds === null ? `never (${v.reason ?? "did not reach the target"})` : `${v.seconds} s (round ${v.rounds})`}, fastest of ${v.runs} run(s)`,
  );
  return {
    title: `Time to accuracy (${s.scenario}: target accuracy ${s.target}, seconds from process launch)`,
    headers: ["round", "fedsim s", "fedsim accuracy", "PyTorch s", "PyTorch accuracy"],
    rows,
    notes: [
      `fedsim reached ${s.target} ${s.fedsimSeconds ?? "–"} s after launch (round ${s.fedsimRounds ?? "never"}), PyTorch ` +
        `${s.pytorchSeconds ?? "–"} s after launch (round ${s.pytorchRounds ?? "never"}, ${py.best ?? "–"}): ratio ${ratioText(s.ratio)} (goal ≤ 0.5).`,
      `Both clocks are the wall clock from the moment the bench launches the process to the end of the round that ` +
        "reaches the target: interpreter start-up, imports, data loading and fedsim's pool processes connecting all count.",
      `fedsim: \`fedsim run scenarios/${s.scenario}.yaml --out DIR\` in its own process (${s.processes ?? "?"} pool processes, ` +
        `${s.backend} backend, Socket.IO on loopback); each round's end is its record's wall-clock start plus its duration, ` +
        `read from the run's checkpoint. Its first round started ${s.fedsimFirstRoundStartSeconds ?? "?"} s after launch; ` +
        `the process exited after ${s.fedsimWallSeconds} s (all ${s.fedsimCurve.length} rounds, the report written).`,
      py.available
        ? `PyTorch ${py.torch ?? "?"}: bench/references/fedavg_reference.py, given both cores two ways, each run before and after fedsim's, ` +
          `stopping at the target: ${variants.join("; ")}. The fastest variant is the reference. OpenBLAS ${py.blas ?? "?"} ` +
          `(the training section's winner for this model and batch; \`${py.openblasConfig ?? "not OpenBLAS"}\`).`
        : `No PyTorch reference: ${py.reason ?? "unavailable"}. The ratio is left empty.`,
      "Both sides see the same federation: fedsim exports its train/test arrays, each client's partition indices " +
        "(partitionIndices, as partitionForClients cuts them) and the initial global weights to a file the script " +
        `reads. Initial test accuracy: fedsim ${s.initialAccuracy.fedsim}, PyTorch ${s.initialAccuracy.pytorch ?? "–"}. ` +
        "Minibatch order differs (each side shuffles with its own RNG).",
    ],
  };
}

/** The privacy section's per-round note; none for results written before it was measured. */
export function privacyPerRoundNote(
  p: PrivacyPerRound | null | undefined,
  note: string | undefined,
): string[] {
  if (p === undefined) return [];
  if (p === null) return [note ?? "Per-round cost not measured."];
  return [
    `A whole ${p.clients}-client ${p.model} round without training (every party's work added up, median of ${p.repeats}): ` +
      `plain ${p.plainSeconds} s, with envelopes ${p.envelopeSeconds} s (${p.envelopeRatio}×), with SecAgg ` +
      `${p.secaggSeconds} s (${p.secaggRatio}×); docs/BENCHMARKS-privacy.md has more cases.`,
  ];
}
