/**
 * The per-client timeline: a Gantt-like chart with one row per client and one bar per fit, from
 * when the coordinator asked for it to when the outcome arrived, coloured by outcome, under the
 * rounds' boundaries. With thousands of clients only the busiest rows are drawn, and the page
 * says so.
 */
import type * as echarts from "echarts";
import { outcomeColor, outcomeLabel } from "./charts.js";
import { shortClientName } from "./format.js";
import { type Chart, DEFAULT_WIDTH, frame, niceCeiling, renderChart } from "./render.js";
import { KNOWN_FAILURE_KINDS, type TimelineEntry } from "./summary-schema.js";

export const DEFAULT_TIMELINE_CLIENTS = 60;

/**
 * The fits on the virtual clock's time line (simulated seconds since the run began), when every
 * fit has its simulated times; null otherwise.
 */
export function simulatedTimeline(timeline: readonly TimelineEntry[]): TimelineEntry[] | null {
  if (timeline.length === 0) return null;
  const out: TimelineEntry[] = [];
  for (const entry of timeline) {
    const { simulatedSentAt: sent, simulatedArrivedAt: arrived } = entry;
    if (sent === undefined || arrived === undefined) return null;
    out.push({ ...entry, startSeconds: sent, seconds: arrived - sent });
  }
  return out;
}

/** Where each round began on the timeline: its first fit request, by round. */
export function roundStarts(timeline: readonly TimelineEntry[]): Array<{ round: number; start: number }> {
  const starts = new Map<number, number>();
  for (const e of timeline)
    starts.set(e.round, Math.min(starts.get(e.round) ?? Number.POSITIVE_INFINITY, e.startSeconds));
  return [...starts.entries()].sort(([a], [b]) => a - b).map(([round, start]) => ({ round, start }));
}

/**
 * The rounds' boundaries as dashed vertical lines, each labelled with its round; with many
 * rounds only every k-th label is written, so they stay readable.
 */
function roundBoundaries(
  starts: ReadonlyArray<{ round: number; start: number }>,
): echarts.CustomSeriesOption {
  const every = Math.max(1, Math.ceil(starts.length / 16));
  return {
    type: "custom",
    name: "round starts",
    renderItem: "fedsim:none" as never,
    data: [],
    markLine: {
      silent: true,
      symbol: "none",
      lineStyle: { color: "#9ca3af", type: "dashed", width: 1 },
      // The category axis is inverted, so the line starts at the top of the plot.
      label: { position: "start", color: "#374151", fontSize: 11 },
      data: starts.map(({ round, start }, i) => ({
        xAxis: start,
        label: { show: i % every === 0, formatter: `r${round}` },
      })),
    },
  };
}

export interface TimelineSelection {
  /** Row names, top to bottom. */
  rows: string[];
  /** The fits drawn, each with the index of its row. */
  bars: Array<{ row: number; entry: TimelineEntry }>;
  totalClients: number;
  totalFits: number;
  /** Set when clients were left out: what the chart shows instead of everything. */
  capNote?: string;
}

/**
 * The clients to draw: all of them up to `maxClients`, else the busiest by total time spent in
 * fits (then by number of fits), so stragglers and failing clients stay visible.
 */
export function selectTimeline(
  timeline: readonly TimelineEntry[],
  maxClients = DEFAULT_TIMELINE_CLIENTS,
): TimelineSelection {
  const byClient = new Map<string, { name: string; busy: number; fits: number }>();
  for (const entry of timeline) {
    const client = byClient.get(entry.clientId) ?? {
      name: shortClientName(entry.clientId, entry.label),
      busy: 0,
      fits: 0,
    };
    client.busy += entry.seconds;
    client.fits += 1;
    byClient.set(entry.clientId, client);
  }
  const busiest = [...byClient.entries()]
    .sort(([idA, a], [idB, b]) => b.busy - a.busy || b.fits - a.fits || idA.localeCompare(idB))
    .slice(0, Math.max(1, maxClients));
  busiest.sort(
    ([idA, a], [idB, b]) => a.name.localeCompare(b.name, "en", { numeric: true }) || idA.localeCompare(idB),
  );
  const rowOf = new Map(busiest.map(([id], row) => [id, row]));
  const bars = timeline.flatMap((entry) => {
    const row = rowOf.get(entry.clientId);
    return row === undefined ? [] : [{ row, entry }];
  });
  const capped = byClient.size > busiest.length;
  return {
    rows: busiest.map(([, c]) => c.name),
    bars,
    totalClients: byClient.size,
    totalFits: timeline.length,
    ...(capped
      ? {
          capNote:
            `showing the ${busiest.length} busiest of ${byClient.size.toLocaleString("en")} clients ` +
            `(most time in fits), ${bars.length.toLocaleString("en")} of ${timeline.length.toLocaleString("en")} fits`,
        }
      : {}),
  };
}

/** Outcomes in the participation chart's order: ok, the known failure kinds, then the rest by name. */
function outcomesOf(bars: TimelineSelection["bars"]): string[] {
  const present = new Set(bars.map((b) => b.entry.outcome));
  const known = ["ok", ...KNOWN_FAILURE_KINDS].filter((o) => present.has(o));
  return [...known, ...[...present].filter((o) => !known.includes(o)).sort()];
}

export function timelineChart(
  selection: TimelineSelection,
  title: string,
  xName = "seconds since the first round started",
  starts: ReadonlyArray<{ round: number; start: number }> = [],
): Chart {
  const { rows, bars } = selection;
  const rowHeight = rows.length > 30 ? 14 : 24;
  const labelWidth = Math.min(170, 16 + 7 * Math.max(4, ...rows.map((r) => r.length)));
  const outcomes = outcomesOf(bars);
  const failures = outcomes.filter((o) => o !== "ok");
  const series: echarts.SeriesOption[] = outcomes.map(
    (outcome): echarts.CustomSeriesOption => ({
      type: "custom",
      name: outcomeLabel(outcome),
      itemStyle: { color: outcomeColor(outcome, failures) },
      encode: { x: [1, 2], y: 0 },
      renderItem: "fedsim:timelineBar" as never,
      tooltip: { formatter: "fedsim:timelineTooltip" as never },
      data: bars
        .filter((b) => b.entry.outcome === outcome)
        .map((b) => [
          b.row,
          b.entry.startSeconds,
          b.entry.startSeconds + b.entry.seconds,
          b.entry.round,
          rows[b.row],
        ]),
    }),
  );
  const end = Math.max(0, ...bars.map((b) => b.entry.startSeconds + b.entry.seconds));
  if (starts.length > 1) series.push(roundBoundaries(starts));
  const subtitle =
    selection.capNote ??
    "one bar per fit, from request to outcome, coloured by outcome; dashed lines: round starts";
  const f = frame(title, subtitle, outcomes.map(outcomeLabel));
  return renderChart(
    {
      ...f.option,
      legend: { ...(f.option.legend as object), data: outcomes.map(outcomeLabel) },
      grid: { left: labelWidth, right: 32, top: f.top + 14, bottom: 56 },
      xAxis: {
        type: "value",
        name: xName,
        nameLocation: "middle",
        nameGap: 30,
        min: 0,
        // Ends near the last fit, on a round number (ECharts' own rounding can add half a chart).
        max: niceCeiling(end),
        splitLine: { lineStyle: { color: "#eef0f3" } },
      },
      yAxis: {
        type: "category",
        data: rows,
        inverse: true,
        axisLabel: { interval: 0, fontSize: rows.length > 30 ? 10 : 12 },
        axisTick: { show: false },
        splitLine: { show: false },
      },
      series,
    },
    { width: DEFAULT_WIDTH, height: f.top + 14 + 56 + Math.max(3, rows.length) * rowHeight },
    "item",
  );
}
