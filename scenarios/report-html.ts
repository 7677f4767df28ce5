/**
 * DIR/report.html: one run's summary as one self-contained page: what ran (a configuration
 * table) and how it ended, then charts of accuracy, loss, ε, participation and failures, traffic,
 * the clients' data, update norms and the per-client timeline. The charts are rendered on the
 * server with ECharts as SVG, and the page's inlined ECharts redraws them with tooltips and zoom.
 */
import { writeFile } from "node:fs/promises";
import path from "node:path";
import {
  accuracyChart,
  CHART_TITLES,
  epsilonChart,
  hasTraffic,
  lossChart,
  participationChart,
  trafficChart,
} from "./report/charts.js";
import {
  clientLabelsChart,
  clientSizesChart,
  hasUpdateNorms,
  missingNormsReason,
  updateNormsChart,
} from "./report/data-charts.js";
import { escapeHtml, formatDelta, formatDuration, formatNumber, formatPercent } from "./report/format.js";
import { expectationList, facts, figure, page, table } from "./report/html.js";
import { configLabel, formatConfigValue } from "./report/run-config.js";
import {
  clientCounts,
  failuresByKind,
  hasDp,
  parseRunSummary,
  type ReportSummary,
  type ReportSummaryInput,
  readRunSummary,
  totalFailures,
} from "./report/summary-schema.js";
import {
  DEFAULT_TIMELINE_CLIENTS,
  roundStarts,
  selectTimeline,
  simulatedTimeline,
  timelineChart,
} from "./report/timeline-chart.js";
import { chooseXAxis, simulatedHoursAt, type XAxis, type XAxisChoice } from "./report/x-axis.js";

export interface ReportOptions {
  /** Rows of the client timeline before it keeps only the busiest clients (default 60). */
  maxTimelineClients?: number;
  /** Where the summary came from, named in validation errors. */
  source?: string;
  /** The line charts' x axis; default: simulated hours on the virtual clock, else rounds. */
  x?: XAxisChoice;
}

/** The report page for one run. The summary is validated first (old formats are accepted). */
export function buildReportHtml(summary: ReportSummaryInput, options: ReportOptions = {}): string {
  const run = parseRunSummary(summary, options.source ?? "run summary");
  const x = chooseXAxis([{ label: options.source ?? run.scenario, summary: run }], options.x);
  const sections = [
    header(run),
    configuration(run),
    ...charts(run, options.maxTimelineClients ?? DEFAULT_TIMELINE_CLIENTS, x),
    roundTable(run),
  ];
  return page(`fedsim report: ${run.scenario} (${run.strategy})`, sections.join("\n"));
}

/** Reads DIR/summary.json, writes DIR/report.html and returns its path. */
export async function writeReport(dir: string, options: Omit<ReportOptions, "source"> = {}): Promise<string> {
  const summary = await readRunSummary(dir);
  const html = buildReportHtml(summary, { ...options, source: path.join(dir, "summary.json") });
  const file = path.join(dir, "report.html");
  await writeFile(file, html);
  return file;
}

/** Where a run's seconds per example came from, in the page's words. */
const SOURCE_WORDS = {
  measured: "measured on the run's machine",
  scenario: "set by the scenario",
  fleet: "the built-in fleet's published cost",
} as const;

function header(run: ReportSummary): string {
  const clients = clientCounts(run);
  const items: Array<[string, string]> = [
    ["strategy", run.strategy],
    ["backend", run.backend],
    ...(run.training
      ? ([["training", run.training.path === "fast-path" ? "native fast path" : "tfjs autodiff"]] as Array<
          [string, string]
        >)
      : []),
    ["seed", String(run.seed)],
    [
      "clients",
      clients.sampledPerRound !== undefined
        ? `${clients.connected} (${clients.sampledPerRound} per round)`
        : String(clients.connected),
    ],
    ["rounds", String(run.rounds.length)],
    ["initial accuracy", formatPercent(run.initial.accuracy, 2)],
    ["final accuracy", formatPercent(run.final.accuracy, 2)],
    ["final loss", formatNumber(run.final.loss)],
  ];
  if (run.final.epsilon !== undefined) {
    items.push([
      "final ε",
      `${formatNumber(run.final.epsilon, 3)}${run.final.delta !== undefined ? ` (δ = ${formatDelta(run.final.delta)})` : ""}`,
    ]);
  }
  items.push(["duration", formatDuration(run.seconds)]);
  const clock = run.virtualClock;
  if (clock) {
    items.push(
      ["clock", `virtual: ${formatDuration(clock.simulatedSeconds)} simulated`],
      ["device fleet", clock.fleet],
      [
        "seconds per example",
        `${clock.secondsPerExample.toPrecision(3)} (${SOURCE_WORDS[clock.secondsPerExampleSource]})`,
      ],
      ["simulated deadline", formatDuration(clock.deadlineSeconds)],
      ...(clock.budgetSeconds !== undefined
        ? [["simulated budget", formatDuration(clock.budgetSeconds)] as [string, string]]
        : []),
      ["simulated start", `${clock.startHour}:00`],
    );
  }
  items.push(["stopped", run.stopReason ?? "after the last round"]);
  const passed = run.expectations.filter((e) => e.passed).length;
  return [
    `<h1>${escapeHtml(run.scenario)}</h1>`,
    `<p class="lead">fedsim run report: ${escapeHtml(run.strategy)} on ${escapeHtml(run.backend)}, seed ${run.seed}</p>`,
    facts(items),
    `<h2>Expectations${run.expectations.length > 0 ? ` (${passed} of ${run.expectations.length} passed)` : ""}</h2>`,
    expectationList(run.expectations),
  ].join("\n");
}

function charts(run: ReportSummary, maxTimelineClients: number, x: XAxis): string[] {
  const out = ["<h2>Charts</h2>"];
  out.push(figure("accuracy", accuracyChart(run, x)));
  out.push(figure("loss", lossChart(run, x)));
  if (hasDp(run)) out.push(figure("epsilon", epsilonChart(run, x)));
  if (run.rounds.length > 0) out.push(figure("participation", participationChart(run)));
  if (hasTraffic(run)) out.push(figure("traffic", trafficChart(run)));
  if (run.clientData) {
    out.push(figure("client-labels", clientLabelsChart(run.clientData)));
    if (run.clientData.shown.length < run.clientData.clients) {
      out.push(figure("client-sizes", clientSizesChart(run.clientData)));
    }
  }
  if (hasUpdateNorms(run)) out.push(figure("update-norms", updateNormsChart(run)));
  else if (run.rounds.length > 0)
    out.push(`<p class="note" id="no-update-norms">${escapeHtml(missingNormsReason(run))}</p>`);
  if (run.timeline && run.timeline.length > 0) {
    // On the virtual clock the fits are drawn in simulated time: the wall clock only shows training.
    const simulated = x.choice === "simulated-hours" ? simulatedTimeline(run.timeline) : null;
    const shown = simulated ?? run.timeline;
    const selection = selectTimeline(shown, maxTimelineClients);
    out.push(
      figure(
        "timeline",
        simulated
          ? timelineChart(
              selection,
              CHART_TITLES.timeline,
              "simulated seconds since the run began",
              roundStarts(shown),
            )
          : timelineChart(selection, CHART_TITLES.timeline, undefined, roundStarts(shown)),
        selection.capNote
          ? `The timeline is capped for readability: ${selection.capNote}.`
          : `${selection.totalFits} fits by ${selection.totalClients} clients.`,
      ),
    );
  }
  return out;
}

/** What was run, field by field, as the scenario names the fields. */
function configuration(run: ReportSummary): string {
  if (!run.config) {
    return '<h2>Configuration</h2>\n<p class="note">This summary carries no configuration (it was written by an older fedsim).</p>';
  }
  const rows = Object.entries(run.config).map(([field, value]) => [
    configLabel(field),
    formatConfigValue(value),
  ]);
  return `<h2>Configuration</h2>\n${table(["field", "value"], rows, 2, "config")}`;
}

/** Every round's numbers, folded away under the charts. */
function roundTable(run: ReportSummary): string {
  if (run.rounds.length === 0) return '<p class="note">The run has no completed rounds.</p>';
  const dp = hasDp(run);
  const offline = run.rounds.some((r) => r.offline !== undefined);
  const simulated = run.rounds.some((r) => r.simulatedSeconds !== undefined);
  const header = [
    "round",
    "accuracy",
    "loss",
    "trained",
    "did not train",
    ...(offline ? ["offline"] : []),
    "seconds",
    ...(simulated ? ["simulated seconds", "simulated end (h)"] : []),
    ...(dp ? ["ε"] : []),
    "note",
  ];
  const rows = run.rounds.map((r) => {
    const kinds = Object.entries(failuresByKind(r)).filter(([, n]) => n > 0);
    const missing =
      typeof r.failures === "number" || kinds.length === 0
        ? String(totalFailures(r))
        : `${totalFailures(r)} (${kinds.map(([k, n]) => `${k} ${n}`).join(", ")})`;
    return [
      String(r.round),
      formatPercent(r.accuracy, 2),
      formatNumber(r.loss),
      String(r.participants),
      missing,
      ...(offline ? [r.offline !== undefined ? String(r.offline) : "—"] : []),
      r.seconds.toFixed(1),
      ...(simulated ? [formatNumber(r.simulatedSeconds, 1), formatNumber(simulatedHoursAt(r), 2)] : []),
      ...(dp ? [formatNumber(r.epsilon, 3)] : []),
      r.kept ?? "",
    ];
  });
  return `<details>\n<summary>Per-round numbers (${run.rounds.length} rounds)</summary>\n${table(header, rows)}\n</details>`;
}
