/**
 * The report's charts of what clients held and sent: examples per client by label, the spread of
 * client sizes, and the distribution of update norms per round.
 */
import type * as echarts from "echarts";
import type { ClientDataSummary } from "./client-data.js";
import { type Chart, frame, renderChart, sizeFor } from "./render.js";
import type { ReportSummary } from "./summary-schema.js";

/** Ten distinct label colours (Tableau 10); more classes reuse them in order. */
const LABEL_COLORS = [
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

/** Stacked bars: each shown client's examples, split by label (the partition's skew at a glance). */
export function clientLabelsChart(data: ClientDataSummary): Chart {
  const classes = Array.from({ length: data.numClasses }, (_, k) => `label ${k}`);
  const subtitle =
    data.shown.length < data.clients
      ? `the first ${data.shown.length} of ${data.clients.toLocaleString("en")} clients; every client's size is in the histogram below`
      : "examples each client trains on, split by label";
  const f = frame("Examples per client, by label", subtitle, data.numClasses <= 20 ? classes : []);
  const series: echarts.BarSeriesOption[] = classes.map((name, k) => ({
    type: "bar",
    name,
    stack: "labels",
    barMaxWidth: 28,
    itemStyle: { color: LABEL_COLORS[k % LABEL_COLORS.length] },
    data: data.shown.map((c) => c.labels[k] ?? 0),
  }));
  return renderChart(
    {
      ...f.option,
      ...(data.numClasses > 20 ? { legend: { show: false } } : {}),
      xAxis: {
        type: "category",
        name: "client",
        nameLocation: "middle",
        nameGap: 30,
        data: data.shown.map((c) => String(c.client)),
      },
      yAxis: { type: "value", name: "examples", nameLocation: "middle", nameGap: 52, minInterval: 1 },
      series,
    },
    sizeFor(f),
  );
}

/** How many clients hold how many examples, over every client. */
export function clientSizesChart(data: ClientDataSummary): Chart {
  const { edges, counts } = data.sizeHistogram;
  const f = frame(
    "Client sizes",
    `examples per client over all ${data.clients.toLocaleString("en")} clients: min ${data.sizes.min}, mean ${data.sizes.mean.toFixed(1)}, max ${data.sizes.max}`,
    [],
  );
  const bin = (i: number) =>
    edges[i] === edges[i + 1] ? String(edges[i]) : `${Math.ceil(edges[i])}–${Math.floor(edges[i + 1])}`;
  return renderChart(
    {
      ...f.option,
      legend: { show: false },
      xAxis: {
        type: "category",
        name: "examples per client",
        nameLocation: "middle",
        nameGap: 30,
        data: counts.map((_, i) => bin(i)),
      },
      yAxis: { type: "value", name: "clients", nameLocation: "middle", nameGap: 52, minInterval: 1 },
      series: [{ type: "bar", name: "clients", itemStyle: { color: "#4e79a7" }, data: counts }],
    },
    sizeFor(f),
  );
}

export function hasUpdateNorms(summary: ReportSummary): boolean {
  return summary.rounds.some((r) => r.updateNorms !== undefined);
}

/** Why a run has no update norms to show, in a sentence for the page. */
export function missingNormsReason(summary: ReportSummary): string {
  const privacy = String(summary.config?.privacy ?? "");
  if (privacy.includes("dp") || privacy.includes("secagg")) {
    return "Update norms are not shown: under differential privacy and secure aggregation the coordinator does not see individual updates, so it records no norms.";
  }
  if (summary.updates !== undefined) {
    return "Update norms are not recorded for asynchronous strategies.";
  }
  return "Update norms are not in this summary (written by an older fedsim, or every round failed).";
}

/** A box per round: min, quartiles and max of the accepted updates' L2 norms. */
export function updateNormsChart(summary: ReportSummary): Chart {
  const rounds = summary.rounds.filter((r) => r.updateNorms !== undefined);
  const f = frame(
    "Update norms per round",
    "L2 norm of each accepted update (local − global weights): min, quartiles, max",
    ["update norm", "mean"],
  );
  return renderChart(
    {
      ...f.option,
      xAxis: {
        type: "category",
        name: "round",
        nameLocation: "middle",
        nameGap: 30,
        data: rounds.map((r) => String(r.round)),
      },
      yAxis: { type: "value", name: "‖Δ‖₂", nameLocation: "middle", nameGap: 52, scale: true },
      series: [
        {
          type: "boxplot",
          name: "update norm",
          itemStyle: { color: "#dbe4f5", borderColor: "#4e79a7" },
          data: rounds.map((r) => {
            const n = r.updateNorms;
            return n ? [n.min, n.q1, n.median, n.q3, n.max] : [];
          }),
        },
        {
          type: "line",
          name: "mean",
          showSymbol: rounds.length <= 40,
          symbolSize: 5,
          itemStyle: { color: "#e15759" },
          lineStyle: { width: 1.5, type: "dashed" },
          data: rounds.map((r) => r.updateNorms?.mean ?? null),
        },
      ],
    },
    sizeFor(f),
    "item",
  );
}
