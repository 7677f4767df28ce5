/**
 * `fedsim compare`: several runs overlaid on one set of charts, and how many rounds each needed
 * to reach a target accuracy (McMahan et al. 2017's measure, see rounds-to-target.ts).
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { escapeHtml, formatDuration, formatNumber, formatPercent, formatRounds } from "./format.js";
import { figure, page, table } from "./html.js";
import { lineChart } from "./render.js";
import { defaultTarget, roundsToTarget, xAtTarget } from "./rounds-to-target.js";
import { configDifferences, configLabel, formatConfigValue } from "./run-config.js";
import { hasDp, type ReportSummary, readRunSummary } from "./summary-schema.js";
import { chooseXAxis, hasSimulatedTime, simulatedHoursAt, type XAxisChoice } from "./x-axis.js";

/**
 * Each run keeps one colour, dash pattern and marker on every chart, so overlapping curves stay
 * apart even in print or for readers who do not tell the colours apart. Tableau 10 colours.
 */
const RUN_COLORS = [
  "#4e79a7",
  "#f28e2b",
  "#e15759",
  "#76b7b2",
  "#59a14f",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
  "#bab0ac",
];

const RUN_DASHES: Array<"solid" | "dashed" | "dotted" | number[]> = [
  "solid",
  "dashed",
  "dotted",
  [10, 4, 2, 4],
  [2, 6],
  [14, 6],
];
const RUN_SYMBOLS = ["circle", "rect", "triangle", "diamond", "emptyCircle", "emptyRect", "emptyTriangle"];

/** The line style of the i-th run: colour, dash and marker. */
export function runStyle(i: number): {
  color: string;
  dash: "solid" | "dashed" | "dotted" | number[];
  symbol: string;
} {
  return {
    color: RUN_COLORS[i % RUN_COLORS.length],
    dash: RUN_DASHES[i % RUN_DASHES.length],
    symbol: RUN_SYMBOLS[i % RUN_SYMBOLS.length],
  };
}

export interface LabelledRun {
  /** Short unique name for legends and the table (the shortest distinguishing path suffix). */
  label: string;
  dir: string;
  summary: ReportSummary;
}

export interface ComparisonRow {
  label: string;
  dir: string;
  scenario: string;
  strategy: string;
  rounds: number;
  finalAccuracy: number;
  bestAccuracy: number;
  /** Fractional round at which the best-so-far accuracy reaches the target; null if never. */
  roundsToTarget: number | null;
  /**
   * Virtual clock only: simulated hours at which the best-so-far accuracy reaches the target (the
   * same measure on the simulated-time axis), null if never; and the run's simulated hours.
   */
  simulatedHoursToTarget?: number | null;
  simulatedHours?: number;
  finalEpsilon?: number;
  seconds: number;
}

export interface Comparison {
  target: number;
  /** How the target was chosen: "given", or the default's rule. */
  targetSource: string;
  rows: ComparisonRow[];
}

/** The shortest trailing part of each path that tells the runs apart: runs/byz/krum → "krum". */
export function runLabels(dirs: readonly string[]): string[] {
  const parts = dirs.map((d) => path.resolve(d).split(path.sep).filter(Boolean));
  const depth = dirs.map(() => 1);
  for (;;) {
    const labels = parts.map((p, i) => p.slice(-depth[i]).join("/"));
    let changed = false;
    labels.forEach((label, i) => {
      const clash = labels.some((other, j) => j !== i && other === label);
      if (clash && depth[i] < parts[i].length) {
        depth[i] += 1;
        changed = true;
      }
    });
    if (!changed) return labels.map((label, i) => label || dirs[i]);
  }
}

export async function loadRuns(dirs: readonly string[]): Promise<LabelledRun[]> {
  if (dirs.length === 0) throw new FedsimError(ErrorCode.INVALID_CONFIG, "give at least one run directory");
  const summaries = await Promise.all(dirs.map((dir) => readRunSummary(dir)));
  const labels = runLabels(dirs);
  return summaries.map((summary, i) => ({ label: labels[i], dir: dirs[i], summary }));
}

/** Rounds to target per run; the target defaults as documented in `defaultTarget`. */
export function compareSummaries(runs: readonly LabelledRun[], target?: number): Comparison {
  if (target !== undefined && !(target > 0 && target <= 1)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `target must be an accuracy in (0, 1], got ${target}`);
  }
  const choice =
    target !== undefined ? { target, source: "given" } : defaultTarget(runs.map((r) => r.summary));
  const rows = runs.map(({ label, dir, summary }): ComparisonRow => {
    const accuracies = summary.rounds.map((r) => r.accuracy);
    const finite = [summary.initial.accuracy, ...accuracies].filter(Number.isFinite);
    const simulated = hasSimulatedTime(summary)
      ? {
          simulatedHoursToTarget: xAtTarget(
            summary.rounds.map((r): [number, number] => [simulatedHoursAt(r), r.accuracy]),
            choice.target,
            summary.initial.accuracy,
          ),
          simulatedHours: Math.max(...summary.rounds.map(simulatedHoursAt)),
        }
      : {};
    return {
      label,
      dir,
      scenario: summary.scenario,
      strategy: summary.strategy,
      rounds: summary.rounds.length,
      finalAccuracy: summary.final.accuracy,
      bestAccuracy: finite.length > 0 ? Math.max(...finite) : Number.NaN,
      roundsToTarget: roundsToTarget(accuracies, choice.target, summary.initial.accuracy),
      ...simulated,
      ...(summary.final.epsilon !== undefined ? { finalEpsilon: summary.final.epsilon } : {}),
      seconds: summary.seconds,
    };
  });
  return { target: choice.target, targetSource: choice.source, rows };
}

function tableCells(comparison: Comparison): { header: string[]; rows: string[][] } {
  const withEpsilon = comparison.rows.some((r) => r.finalEpsilon !== undefined);
  const simulated = comparison.rows.some((r) => r.simulatedHours !== undefined);
  const hours = (h: number | null | undefined) =>
    h === undefined ? "—" : h === null ? "not reached" : `${formatNumber(h, 2)} h`;
  const header = [
    "run",
    "scenario",
    "strategy",
    "rounds",
    "final acc.",
    "best acc.",
    `reached ${formatPercent(comparison.target)}`,
    ...(simulated ? [`simulated to ${formatPercent(comparison.target)}`, "simulated"] : []),
    ...(withEpsilon ? ["final ε"] : []),
    "duration",
  ];
  const rows = comparison.rows.map((r) => [
    r.label,
    r.scenario,
    r.strategy,
    String(r.rounds),
    formatPercent(r.finalAccuracy, 2),
    formatPercent(r.bestAccuracy, 2),
    formatRounds(r.roundsToTarget),
    ...(simulated ? [hours(r.simulatedHoursToTarget), hours(r.simulatedHours)] : []),
    ...(withEpsilon ? [formatNumber(r.finalEpsilon, 3)] : []),
    formatDuration(r.seconds),
  ]);
  return { header, rows };
}

/** The plain-text table the CLI prints. */
export function formatCompareTable(comparison: Comparison): string {
  const { header, rows } = tableCells(comparison);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  // Text columns (run, scenario, strategy) read best left-aligned, numbers right-aligned.
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join("  ")
      .trimEnd();
  return [
    `target accuracy ${formatNumber(comparison.target)} (${comparison.targetSource})`,
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
  ].join("\n");
}

export function buildCompareHtml(
  runs: readonly LabelledRun[],
  comparison: Comparison,
  xChoice?: XAxisChoice,
): string {
  const { header, rows } = tableCells(comparison);
  const x = chooseXAxis(runs, xChoice);
  const byTime = x.choice === "simulated-hours";
  const over = byTime
    ? "over simulated time"
    : x.choice === "wall-clock"
      ? "over wall-clock time"
      : "per round";
  const perRound = (
    pick: (r: ReportSummary["rounds"][number]) => number | undefined,
    initial?: (s: ReportSummary) => number,
  ) =>
    runs.map(({ label, summary }, i) => ({
      name: label,
      ...runStyle(i),
      points: [
        ...(initial ? [[0, initial(summary)] as [number, number]] : []),
        ...summary.rounds
          .filter((r) => pick(r) !== undefined)
          .map((r): [number, number] => [x.of(r), pick(r) ?? Number.NaN]),
      ],
    }));
  const target = comparison.target;
  const sections = [
    `<h1>Comparing ${runs.length} run${runs.length === 1 ? "" : "s"}</h1>`,
    `<p class="lead">Target accuracy ${escapeHtml(formatPercent(target, 2))} (${escapeHtml(comparison.targetSource)}).</p>`,
    "<h2>Rounds to target accuracy</h2>",
    table(header, rows, 3),
    '<p class="note">As in McMahan et al. (2017): on the best-so-far test accuracy (running maximum, ' +
      "round 0 being the initial model), the round where it first reaches the target, interpolated " +
      "linearly between the two rounds around the crossing: “in round 4 (3.5)” means halfway " +
      "through round 4, between round 3's evaluation and round 4's. A later dip does not undo it." +
      (comparison.rows.some((r) => r.simulatedHours !== undefined)
        ? " Simulated time to target is the same measure with each round placed at its simulated end."
        : "") +
      "</p>",
    "<h2>Charts</h2>",
    figure(
      "accuracy",
      lineChart({
        title: `Test accuracy ${over}`,
        subtitle: byTime
          ? "centralised evaluation of each run's global model, at the simulated end of each round"
          : "centralised evaluation of each run's global model; round 0 is the initial model",
        xName: x.name,
        continuousX: !x.whole,
        yName: "test accuracy",
        percent: true,
        series: perRound(
          (r) => r.accuracy,
          (s) => s.initial.accuracy,
        ),
        reference: { value: target, label: `target ${formatPercent(target)}` },
      }),
    ),
    figure(
      "loss",
      lineChart({
        title: `Test loss ${over}`,
        xName: x.name,
        continuousX: !x.whole,
        yName: "loss",
        logWhenWide: true,
        series: perRound(
          (r) => r.loss,
          (s) => s.initial.loss,
        ),
      }),
    ),
  ];
  if (runs.some((r) => hasDp(r.summary))) {
    sections.push(
      figure(
        "epsilon",
        lineChart({
          title: `Privacy budget ε ${over}`,
          subtitle: "(ε, δ) spent so far, for the runs with differential privacy",
          xName: x.name,
          continuousX: !x.whole,
          yName: "ε",
          series: perRound((r) => r.epsilon).filter((s) => s.points.length > 0),
        }),
      ),
    );
  }
  sections.push(configDifferenceSection(runs));
  const dirs = runs.map(({ label, dir }) => [label, dir]);
  sections.push("<h2>Runs</h2>", table(["run", "directory"], dirs, 2));
  return page(`fedsim compare: ${runs.map((r) => r.label).join(", ")}`, sections.join("\n"));
}

/** The fields whose values differ between the runs, one column per run. */
function configDifferenceSection(runs: readonly LabelledRun[]): string {
  const without = runs.filter((r) => !r.summary.config).map((r) => r.label);
  const missing =
    without.length > 0
      ? `<p class="note">No configuration in the summaries of ${escapeHtml(without.join(", "))} (written by an older fedsim).</p>`
      : "";
  const fields = configDifferences(runs.map((r) => r.summary.config));
  const withConfig = runs.filter((r) => r.summary.config);
  if (withConfig.length < 2) return `<h2>Configuration differences</h2>\n${missing}`;
  if (fields.length === 0) {
    return `<h2>Configuration differences</h2>\n<p class="note">The runs' configurations are the same.</p>\n${missing}`;
  }
  const rows = fields.map((field) => [
    configLabel(field),
    ...withConfig.map((r) => formatConfigValue(r.summary.config?.[field])),
  ]);
  return [
    "<h2>Configuration differences</h2>",
    table(["field", ...withConfig.map((r) => r.label)], rows, 1 + withConfig.length, "config"),
    missing,
  ].join("\n");
}

export interface CompareRunsOptions {
  target?: number;
  /** Where to write the HTML page (default ./compare.html). */
  out?: string;
  /** The charts' x axis; default: simulated hours when every run is on the virtual clock, else rounds. */
  x?: XAxisChoice;
}

/** Loads the runs, compares them and writes the HTML page; returns the comparison and its path. */
export async function compareRuns(
  dirs: readonly string[],
  options: CompareRunsOptions = {},
): Promise<Comparison & { html: string }> {
  const runs = await loadRuns(dirs);
  const comparison = compareSummaries(runs, options.target);
  const file = options.out ?? "compare.html";
  await mkdir(path.dirname(path.resolve(file)), { recursive: true });
  await writeFile(file, buildCompareHtml(runs, comparison, options.x));
  return { ...comparison, html: file };
}
