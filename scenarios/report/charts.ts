/** The charts of one run's report. */
import type * as echarts from "echarts";
import { byteUnitFor, formatDelta } from "./format.js";
import { type Chart, frame, lineChart, renderChart, sizeFor } from "./render.js";
import { expectationBound } from "./rounds-to-target.js";
import {
  failureKindsPresent,
  failuresByKind,
  type ReportSummary,
  UNKNOWN_FAILURE_KIND,
} from "./summary-schema.js";
import { chooseXAxis, type XAxis } from "./x-axis.js";

/** One colour per fit outcome, shared by the participation and timeline charts. */
const OUTCOME_COLORS: Record<string, string> = {
  ok: "#5070dd",
  timeout: "#f59e0b",
  disconnect: "#8b5cf6",
  rejected: "#dc2626",
  error: "#7f1d1d",
  cancelled: "#9ca3af",
  [UNKNOWN_FAILURE_KIND]: "#ef4444",
};
const SPARE_COLORS = ["#0d9488", "#db2777", "#65a30d", "#0891b2", "#a16207"];

export function outcomeColor(outcome: string, others: readonly string[] = []): string {
  const known = OUTCOME_COLORS[outcome];
  if (known) return known;
  const i = Math.max(0, others.indexOf(outcome));
  return SPARE_COLORS[i % SPARE_COLORS.length];
}

/** Human words for the outcome kinds on legends. */
export function outcomeLabel(outcome: string): string {
  const labels: Record<string, string> = {
    ok: "trained",
    timeout: "timed out",
    disconnect: "disconnected",
    rejected: "rejected",
    error: "error",
    cancelled: "cancelled",
    [UNKNOWN_FAILURE_KIND]: "failed",
  };
  return labels[outcome] ?? outcome;
}

export const CHART_TITLES = {
  accuracy: "Test accuracy per round",
  loss: "Loss per round",
  epsilon: "Privacy budget ε per round",
  accuracyByTime: "Test accuracy over simulated time",
  lossByTime: "Loss over simulated time",
  epsilonByTime: "Privacy budget ε over simulated time",
  accuracyByWall: "Test accuracy over wall-clock time",
  lossByWall: "Loss over wall-clock time",
  epsilonByWall: "Privacy budget ε over wall-clock time",
  participation: "Participation and failures per round",
  traffic: "Traffic per round",
  timeline: "Client timeline",
} as const;

/** The x axis a run's line charts use by default: simulated hours on the virtual clock, else rounds. */
export function defaultXAxis(summary: ReportSummary): XAxis {
  return chooseXAxis([{ label: summary.scenario, summary }]);
}

function byTime(x: XAxis): boolean {
  return x.choice === "simulated-hours";
}

/** The chart's title for its x axis: per round, over simulated time, or over wall-clock time. */
function titleFor(kind: "accuracy" | "loss" | "epsilon", x: XAxis): string {
  if (x.choice === "wall-clock") return CHART_TITLES[`${kind}ByWall`];
  return byTime(x) ? CHART_TITLES[`${kind}ByTime`] : CHART_TITLES[kind];
}

export function accuracyChart(summary: ReportSummary, x: XAxis = defaultXAxis(summary)): Chart {
  const target = summary.expectations
    .map((e) => expectationBound(e, "finalAccuracy", "≥"))
    .find((b) => b !== undefined);
  return lineChart({
    title: titleFor("accuracy", x),
    subtitle: byTime(x)
      ? "centralised evaluation of the global model on the test set, at the simulated end of each round"
      : x.choice === "wall-clock"
        ? "centralised evaluation of the global model on the test set, at the end of each round"
        : "test-set accuracy of the global model; round 0 is the initial model",
    xName: x.name,
    continuousX: !x.whole,
    yName: "test accuracy",
    percent: true,
    series: [
      {
        name: "test accuracy",
        points: [
          [0, summary.initial.accuracy],
          ...summary.rounds.map((r): [number, number] => [x.of(r), r.accuracy]),
        ],
      },
    ],
    ...(target !== undefined ? { reference: { value: target, label: `expected ≥ ${target}` } } : {}),
  });
}

export function lossChart(summary: ReportSummary, x: XAxis = defaultXAxis(summary)): Chart {
  const trained = summary.rounds.filter((r) => r.trainLoss !== undefined);
  return lineChart({
    title: titleFor("loss", x),
    subtitle:
      trained.length > 0
        ? "test loss of the global model; train loss averaged over the round's clients"
        : "cross-entropy of the global model on the test set",
    xName: x.name,
    continuousX: !x.whole,
    yName: "loss",
    logWhenWide: true,
    series: [
      {
        name: "test loss",
        points: [
          [0, summary.initial.loss],
          ...summary.rounds.map((r): [number, number] => [x.of(r), r.loss]),
        ],
      },
      ...(trained.length > 0
        ? [
            {
              name: "train loss",
              dashed: true,
              points: trained.map((r): [number, number] => [x.of(r), r.trainLoss ?? Number.NaN]),
            },
          ]
        : []),
    ],
  });
}

export function epsilonChart(summary: ReportSummary, x: XAxis = defaultXAxis(summary)): Chart {
  const budget = summary.expectations
    .map((e) => expectationBound(e, "epsilon", "≤"))
    .find((b) => b !== undefined);
  const delta = summary.final.delta;
  return lineChart({
    title: titleFor("epsilon", x),
    subtitle: `(ε, δ) spent so far, from the RDP accountant${delta !== undefined ? `; δ = ${formatDelta(delta)}` : ""}`,
    xName: x.name,
    continuousX: !x.whole,
    yName: "ε",
    series: [
      {
        name: "ε",
        // Nothing is spent before the first round.
        points: [
          [0, 0],
          ...summary.rounds
            .filter((r) => r.epsilon !== undefined)
            .map((r): [number, number] => [x.of(r), r.epsilon ?? Number.NaN]),
        ],
      },
    ],
    ...(budget !== undefined ? { reference: { value: budget, label: `budget ε ≤ ${budget}` } } : {}),
  });
}

/** Stacked bars: clients that trained, then each failure kind; the number sampled as a line. */
export function participationChart(summary: ReportSummary): Chart {
  const rounds = summary.rounds;
  const kinds = failureKindsPresent(rounds);
  const bar = (name: string, color: string, values: number[]): echarts.BarSeriesOption => ({
    type: "bar",
    name,
    stack: "clients",
    barMaxWidth: 36,
    itemStyle: { color },
    data: values,
  });
  const series: echarts.SeriesOption[] = [
    bar(
      outcomeLabel("ok"),
      outcomeColor("ok"),
      rounds.map((r) => r.participants),
    ),
    ...kinds.map((kind) =>
      bar(
        outcomeLabel(kind),
        outcomeColor(kind, kinds),
        rounds.map((r) => failuresByKind(r)[kind] ?? 0),
      ),
    ),
  ];
  if (rounds.some((r) => r.sampled !== undefined)) {
    series.push({
      type: "line",
      name: "sampled",
      data: rounds.map((r) => r.sampled ?? null),
      showSymbol: rounds.length <= 40,
      itemStyle: { color: "#374151" },
      lineStyle: { type: "dashed", width: 1.5 },
    });
  }
  if (rounds.some((r) => (r.dropouts ?? 0) > 0)) {
    series.push({
      type: "line",
      name: "dropped out",
      data: rounds.map((r) => r.dropouts ?? null),
      showSymbol: rounds.length <= 40,
      itemStyle: { color: "#be185d" },
      lineStyle: { width: 1.5 },
    });
  }
  const f = frame(
    CHART_TITLES.participation,
    "sampled clients per round, by the outcome of their fit",
    series.map((s) => String(s.name)),
  );
  return renderChart(
    {
      ...f.option,
      xAxis: roundCategoryAxis(rounds),
      yAxis: { type: "value", name: "clients", nameLocation: "middle", nameGap: 44, minInterval: 1 },
      series,
    },
    sizeFor(f),
  );
}

/** The x axis of the per-round bar charts: one category per round. */
function roundCategoryAxis(rounds: readonly { round: number }[]): echarts.XAXisComponentOption {
  return {
    type: "category",
    name: "round",
    nameLocation: "middle",
    nameGap: 30,
    data: rounds.map((r) => String(r.round)),
  };
}

export function hasTraffic(summary: ReportSummary): boolean {
  return summary.rounds.some((r) => r.bytesSent !== undefined || r.bytesReceived !== undefined);
}

/** Bytes per round in the one unit that suits the largest value. */
export function trafficChart(summary: ReportSummary): Chart {
  const rounds = summary.rounds;
  const max = Math.max(0, ...rounds.flatMap((r) => [r.bytesSent ?? 0, r.bytesReceived ?? 0]));
  const { unit, size } = byteUnitFor(max);
  const bar = (name: string, color: string, values: Array<number | undefined>): echarts.BarSeriesOption => ({
    type: "bar",
    name,
    barMaxWidth: 28,
    itemStyle: { color },
    data: values.map((v) => (v === undefined ? null : v / size)),
  });
  const f = frame(CHART_TITLES.traffic, "payload bytes per round, as counted by the coordinator", [
    "sent",
    "received",
  ]);
  return renderChart(
    {
      ...f.option,
      xAxis: roundCategoryAxis(rounds),
      yAxis: { type: "value", name: unit, nameLocation: "middle", nameGap: 52 },
      series: [
        bar(
          "sent",
          "#5070dd",
          rounds.map((r) => r.bytesSent),
        ),
        bar(
          "received",
          "#0d9488",
          rounds.map((r) => r.bytesReceived),
        ),
      ],
    },
    sizeFor(f),
  );
}
