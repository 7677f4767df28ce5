import type { BenchEnvironment } from "../environment.js";
import type { TorchReference } from "../references/torch-reference.js";
import type { AggregationSection } from "../sections/aggregation.js";
import { type AsyncSimulationSection, asyncSimulationTable } from "../sections/async-simulation.js";
import type { ParallelSection } from "../sections/parallel.js";
import { type PoolSessionSection, poolSessionTable } from "../sections/pool-session.js";
import type { PrivacySection } from "../sections/privacy.js";
import type { RoundOverheadSection } from "../sections/round-overhead.js";
import type { ScaleOutSection } from "../sections/scale-out.js";
import { scaleOutTable } from "../sections/scale-out-table.js";
import type { TimeToAccuracySection } from "../sections/time-to-accuracy.js";
import type { BackendStatus, TrainingRow } from "../sections/training.js";
import type { TransferSection } from "../sections/transfer.js";
import { SECTION_NAMES, type SectionName } from "../sections.js";
import { type Cell, fixed, markdownTable, plainTable, ratioText, type Table } from "./report-format.js";
import {
  parallelTable,
  privacyPerRoundNote,
  roundOverheadTable,
  targetsTable,
  timeToAccuracyTable,
} from "./report-sections.js";
import type { TargetResult } from "./targets.js";

export { SECTION_NAMES, type SectionName } from "../sections.js";

/** The shape of bench/results/latest.json. */
export interface BenchResults {
  schema: 1;
  generatedAt: string;
  command: string;
  quick: boolean;
  /** Sections measured by this run; the others were carried over from the previous file. */
  sectionsRun: SectionName[];
  /** When each section was measured, and whether in --quick mode. */
  measured: Partial<Record<SectionName, { at: string; quick: boolean; loadAverage?: number }>>;
  environment: BenchEnvironment & {
    backends: BackendStatus[] | null;
    torch: string | null;
    blasConfig: string | null;
  };
  reference: Omit<TorchReference, "results"> | null;
  training: TrainingRow[] | null;
  aggregation: AggregationSection | null;
  privacy: PrivacySection | null;
  transfer: TransferSection | null;
  roundOverhead: RoundOverheadSection | null;
  parallel: ParallelSection | null;
  timeToAccuracy: TimeToAccuracySection | null;
  poolSession: PoolSessionSection | null;
  scaleOut: ScaleOutSection | null;
  /** Absent in files written before the section existed. */
  asyncSimulation?: AsyncSimulationSection | null;
  /** The project's targets checked against the figures above (bench/report/targets.ts). */
  targets: TargetResult[];
  /** Sections that threw, with the message. */
  errors: Partial<Record<SectionName, string>>;
}

/** Each case's screening figures per OpenBLAS configuration (best thread count), fastest first. */
function screeningNote(rows: TorchReference["blasScreening"]): string[] {
  if (rows === null || rows === undefined || rows.length === 0) return [];
  const cases = [...new Set(rows.map((r) => `${r.model} b${r.batch}`))];
  const perCase = cases.map((name) => {
    const entries = rows
      .filter((r) => `${r.model} b${r.batch}` === name)
      .sort((a, b) => b.examplesPerSec - a.examplesPerSec)
      .map((r) => `${r.blas} ${r.examplesPerSec.toLocaleString("en-US")} (${r.threads} thr)`);
    return `${name}: ${entries.join(", ")}`;
  });
  return [
    `OpenBLAS screening (short runs, ex/s, one process per configuration; the winners were then measured in full): ${perCase.join("; ")}.`,
  ];
}

function trainingTable(r: BenchResults): Table | null {
  if (r.training === null) return null;
  const ref = r.reference;
  const notes = [
    ref?.available
      ? `Reference: PyTorch ${ref.torch} on ${ref.blas ?? "?"}, each case the fastest of ${ref.torchThreadsTried?.join(" and ") ?? "?"} torch threads ` +
        `and the OpenBLAS configurations ${ref.blasChoicesTried?.join(", ") ?? `\`${ref.openblasConfig ?? "?"}\``} ` +
        "(each its own process: auto = OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, otherwise OPENBLAS_CORETYPE set for the child only), " +
        `${ref.runs} process run(s) in all, before and after fedsim's (the winners again after); OPENBLAS_NUM_THREADS=${ref.openblasNumThreads ?? "?"}. ` +
        "The winning configuration and thread count are in the torch threads and OpenBLAS columns."
      : `No PyTorch reference: ${ref?.reason ?? "not run"}. Ratios are left empty.`,
    ...screeningNote(ref?.blasScreening),
    "ratio = fedsim examples/s ÷ PyTorch examples/s on the same model, batch, SGD and loss (1 = as fast).",
    "threads: the backend's intra-op threads; a backend that has the knob (native) keeps, like the reference, " +
      "the faster of all cores and 1 per case, because spin-waiting threads collapse when other processes load the machine.",
    "Every backend common/tf/backend.ts probeBackends() lists and that loads gets rows; the environment table says why the others are missing.",
    "webgpu rows name their adapter: on a machine without a GPU that is Mesa's llvmpipe, a software rasterizer on the CPU, so those figures say nothing about a GPU; on a machine with one, the same command measures it.",
  ];
  return {
    title: "Training (examples/s, local SGD on embedded MNIST)",
    headers: [
      "model",
      "batch",
      "backend",
      "threads",
      "fedsim ex/s",
      "PyTorch ex/s",
      "torch threads",
      "OpenBLAS",
      "ratio",
      "note",
    ],
    rows: r.training.map((t) => [
      t.model,
      t.batch,
      t.adapter === undefined ? t.backend : `${t.backend} on ${t.adapter}`,
      t.threads ?? 1,
      t.examplesPerSec,
      t.pytorchExamplesPerSec,
      t.pytorchThreads,
      t.pytorchBlas,
      ratioText(t.ratio),
      t.note ??
        (t.status === "ok" ? `${t.steps} step${t.steps === 1 ? "" : "s"} × ${t.repeats}, median` : t.status),
    ]),
    notes,
  };
}

function aggregationTable(r: BenchResults): Table | null {
  const a = r.aggregation;
  if (a === null) return null;
  // Files written before the native reference have neither its thread count nor its description.
  const threads = a.threads ?? "?";
  return {
    title: `Aggregation (FedAvg weightedMean, ${a.updates} updates × ${a.floatsPerUpdate.toLocaleString("en-US")} floats = ${a.totalMB} MB)`,
    headers: ["what", "seconds", "GB/s"],
    rows: [
      [
        `weightedMean (fedsim, ${a.implementation?.split(":")[0] ?? "?"}, ${threads} thread(s))`,
        a.seconds,
        a.throughputGBps,
      ],
      [
        `native weighted sum at the physical limit (reference, ${threads} thread(s))`,
        a.referenceSeconds,
        a.referenceThroughputGBps,
      ],
      ["ratio = reference s ÷ fedsim s (best of each)", ratioText(a.ratio), null],
      ["ratio, medians", ratioText(a.medianRatio), null],
    ],
    notes: [
      `Reference: bench/references/aggregation_reference.cc compiled at bench time (\`${a.reference ?? "?"}\`), loaded into the ` +
        "benchmark's process and run over the very same 100 distinct update buffers: float32 fused multiply-adds, " +
        "cache-blocked (16 KB of running sums stay in L1, every update byte read from memory once), four updates per " +
        "pass, OpenMP over blocks at fedsim's thread count. It is memory-bound: about what these cores can read at all.",
      "fedsim accumulates in float64 (100 updates of ~1e-3 would lose precision in float32) and matches its JavaScript " +
        `fallback bit for bit; the two outputs differ by at most ${a.maxRelativeDifference ?? "–"} of the largest value.`,
      `Best of ${a.repeats} interleaved rounds after one untimed round. Goal: ratio ≥ 0.9.`,
    ],
  };
}

function privacyTable(r: BenchResults): Table | null {
  const p = r.privacy;
  if (p === null) return null;
  return {
    title: "Privacy (per client, time ratios against Node's chacha20-poly1305 on the same bytes)",
    headers: [
      "update",
      "seal s",
      "open s",
      "chacha20 enc+dec s",
      "envelopeRatio",
      `SecAgg mask s (${p.secaggNeighbours} nbrs)`,
      "secaggRatio",
      "per-mask ratio",
      "SecAgg ÷ keystream",
    ],
    rows: p.rows.map((row) => [
      `${row.floats.toLocaleString("en-US")} floats (${row.megabytes} MB)`,
      row.sealSeconds,
      row.openSeconds,
      row.chachaSeconds,
      fixed(row.envelopeRatio, 2),
      row.secaggMaskSeconds,
      fixed(row.secaggRatio, 2),
      fixed(row.secaggPerMaskRatio, 2),
      // Absent in results written before the bare-keystream reference was measured.
      fixed((row as { secaggVsKeystream?: number | null }).secaggVsKeystream, 2),
    ]),
    notes: [
      "envelopeRatio = (sealUpdate + EnvelopeOpener.open) ÷ (chacha20-poly1305 encrypt + decrypt); higher = slower. " +
        "The envelope's fixed per-message costs (a fresh X25519 key pair, an ed25519 signature and its verification) weigh most on small updates.",
      `secaggRatio = (quantise + self mask + ${p.secaggNeighbours} pairwise masks) ÷ one chacha20-poly1305 encryption of the update; ` +
        `per-mask ratio divides by ${p.secaggNeighbours + 1} encryptions, the keystream any masking must expand; ` +
        "SecAgg ÷ keystream divides the client's quantise + all masks by OpenSSL's bare ChaCha20 keystream for " +
        "those masks (the ≤ 2× target). The envelope target (≤ 10×) reads envelopeRatio at 6.65 MB.",
      p.secaggKeyAgreementSeconds === null
        ? `SecAgg not measured: ${p.secaggNote ?? "unavailable"}.`
        : `X25519 agreements with ${p.secaggNeighbours} neighbours (once per round, not in the mask time): ${p.secaggKeyAgreementSeconds} s.`,
      `Median of ${p.repeats}, all candidates timed in interleaved rounds.`,
      ...privacyPerRoundNote(p.perRound, p.perRoundNote),
    ],
  };
}

function transferTable(r: BenchResults): Table | null {
  const t = r.transfer;
  if (t === null) return null;
  return {
    title: `Transfer (Socket.IO ${t.transport} loopback, ${(t.payloadBytes / 1e6).toFixed(2)} MB binary payload; context only)`,
    headers: ["direction", "MB/s", "seconds"],
    rows: [
      ["client → server (upload)", t.uploadMBps, t.uploadSeconds],
      ["server → client (download)", t.downloadMBps, t.downloadSeconds],
    ],
    notes: [`Median of ${t.repeats}, completion marked by an acknowledgement.`],
  };
}

function tables(r: BenchResults): Table[] {
  return [
    r.targets.length > 0 ? targetsTable(r.targets) : null,
    trainingTable(r),
    r.roundOverhead ? roundOverheadTable(r.roundOverhead) : null,
    aggregationTable(r),
    privacyTable(r),
    r.parallel ? parallelTable(r.parallel) : null,
    r.timeToAccuracy ? timeToAccuracyTable(r.timeToAccuracy) : null,
    r.poolSession ? poolSessionTable(r.poolSession) : null,
    r.asyncSimulation ? asyncSimulationTable(r.asyncSimulation) : null,
    r.scaleOut ? scaleOutTable(r.scaleOut) : null,
    transferTable(r),
  ].filter((t): t is Table => t !== null);
}

function environmentRows(r: BenchResults): Cell[][] {
  const e = r.environment;
  const backends =
    e.backends
      ?.map((b) =>
        b.loaded
          ? `${b.backend} (${b.adapter ?? `${b.kernels.length} fedsim kernels`})`
          : `${b.backend}: ${b.reason}`,
      )
      .join("; ") ?? "–";
  return [
    ["node", e.node],
    ["platform", `${e.platform} ${e.arch}`],
    [
      "cpu",
      `${e.cpuModel}, ${e.cores} cores${e.cpuFlags.avx512f ? ", AVX-512" : e.cpuFlags.avx2 ? ", AVX2" : ""}`,
    ],
    ["memory", `${e.memoryGiB} GiB`],
    ["load average (1 min)", `${e.loadAverage.start} at start, ${e.loadAverage.end ?? "?"} at end`],
    ["tfjs", e.tfjs],
    ["backends", backends],
    ["torch", e.torch ?? "not available"],
    ["BLAS", e.blasConfig ?? "–"],
  ];
}

function provenance(r: BenchResults): string[] {
  return SECTION_NAMES.filter((s) => r.measured[s] !== undefined).map((s) => {
    const m = r.measured[s]!;
    const notes = [m.quick ? "--quick" : "", m.loadAverage !== undefined ? `load ${m.loadAverage}` : ""];
    const note = notes.filter((n) => n !== "").join(", ");
    return `${s}: ${m.at}${note ? ` (${note})` : ""}`;
  });
}

export function renderMarkdown(r: BenchResults): string {
  const parts = [
    "# Benchmarks",
    "",
    "Written by `npm run bench` (bench/run.ts); the raw figures are in `bench/results/latest.json`. " +
      "Every speed is a ratio against a reference measured on the same machine in the same run, because " +
      "absolute numbers on a shared machine drift by ±15–40% between runs; memory and byte counts (scale-out) " +
      "are absolute, as they do not depend on the load.",
    "",
    "Run `npm run bench` for everything (about 15 minutes on an idle 2-core machine, far longer on a busy one), `node dist/bench/run.js --quick` for a " +
      `short pass, or \`--only roundOverhead,parallel\` to re-measure some sections and keep the others ` +
      `(sections: ${SECTION_NAMES.join(", ")}); \`--render\` rewrites this page from latest.json without measuring.`,
    "",
    "## Environment",
    "",
    markdownTable(["", ""], environmentRows(r)),
    "",
    `Measured: ${provenance(r).join("; ")}.`,
  ];
  for (const table of tables(r)) {
    parts.push("", `## ${table.title}`, "", markdownTable(table.headers, table.rows), "");
    for (const note of table.notes) parts.push(`- ${note}`);
  }
  const errors = Object.entries(r.errors);
  if (errors.length > 0) {
    parts.push("", "## Sections that failed", "");
    for (const [section, message] of errors) parts.push(`- ${section}: ${message}`);
  }
  return `${parts.join("\n")}\n`;
}

export function renderText(r: BenchResults): string {
  const parts: string[] = [plainTable(["environment", ""], environmentRows(r))];
  for (const table of tables(r)) {
    parts.push("", table.title, plainTable(table.headers, table.rows));
    for (const note of table.notes) parts.push(`  * ${note}`);
  }
  for (const [section, message] of Object.entries(r.errors)) parts.push("", `${section} FAILED: ${message}`);
  return parts.join("\n");
}
