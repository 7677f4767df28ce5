/**
 * ECharts rendered to SVG strings on the server (no DOM, no canvas), plus the chart shapes the
 * report and compare pages share. Every chart carries its title inside the SVG, so a saved SVG
 * still says what it shows; the same option, as JSON, lets the page redraw it interactively
 * (chart-runtime.ts).
 */
import * as echarts from "echarts";
import { withFunctions } from "./chart-runtime.js";

export interface ChartSize {
  width: number;
  height: number;
}

export const DEFAULT_WIDTH = 960;
const PLOT_HEIGHT = 270;
/**
 * Server-side, ECharts measures text with fixed metrics; browsers' fonts often run wider, so
 * legend items get a generous gap and the row estimate below assumes wide glyphs.
 */
const LEGEND_GAP = 28;
const FONT = "system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif";

/** A chart as the page holds it: static SVG, and the option the browser redraws it from. */
export interface Chart {
  svg: string;
  /** JSON-safe: functions appear as "fedsim:" markers (chart-runtime.ts). */
  option: echarts.EChartsOption;
  size: ChartSize;
  /** What a tooltip belongs to: a whole x position (line and bar charts) or one item. */
  tooltip: "axis" | "item";
}

/** One chart, rendered. The instance is disposed even if rendering throws. */
export function renderChart(
  option: echarts.EChartsOption,
  size: ChartSize,
  tooltip: Chart["tooltip"] = "axis",
): Chart {
  const chart = echarts.init(null, null, {
    renderer: "svg",
    ssr: true,
    width: size.width,
    height: size.height,
  });
  try {
    chart.setOption({ animation: false, ...(withFunctions(option) as echarts.EChartsOption) });
    return { svg: chart.renderToSVGString(), option, size, tooltip };
  } finally {
    chart.dispose();
  }
}

/**
 * Rows the legend wraps onto. SSR has no layout feedback to the grid, so the legend's height is
 * estimated (≈ 7 px per character at 12 px) and the plot pushed down by it instead of overlapped.
 */
function legendRows(names: readonly string[], width: number): number {
  if (names.length === 0) return 0;
  let rows = 1;
  let used = 0;
  for (const name of names) {
    const item = 25 + 5 + name.length * 7 + LEGEND_GAP;
    if (used > 0 && used + item > width - 16) {
      rows += 1;
      used = 0;
    }
    used += item;
  }
  return rows;
}

export interface Frame {
  option: echarts.EChartsOption;
  /** Pixels above the plot area (title, subtitle, legend). */
  top: number;
}

/** Title, legend and grid placed the same way on every chart. */
export function frame(
  title: string,
  subtitle: string | undefined,
  legend: readonly string[],
  width = DEFAULT_WIDTH,
): Frame {
  const legendTop = subtitle ? 52 : 34;
  // Legend icons are 14 px high, and wrapped rows are itemGap apart.
  const rows = legendRows(legend, width);
  const top = legendTop + (rows > 0 ? 14 + (rows - 1) * (14 + LEGEND_GAP) : 0) + 28;
  return {
    top,
    option: {
      textStyle: { fontFamily: FONT },
      title: {
        text: title,
        ...(subtitle ? { subtext: subtitle } : {}),
        left: 8,
        top: 4,
        textStyle: { fontSize: 16, fontWeight: "bold", color: "#1f2937" },
        subtextStyle: { fontSize: 12, color: "#6b7280" },
      },
      legend: { top: legendTop, left: 8, right: 8, itemGap: LEGEND_GAP, textStyle: { fontSize: 12 } },
      grid: { left: 72, right: 32, top, bottom: 56 },
    },
  };
}

/** Height for a plot area of the usual size under the given frame. */
export function sizeFor(f: Frame, plotHeight = PLOT_HEIGHT): ChartSize {
  return { width: DEFAULT_WIDTH, height: f.top + plotHeight + 56 };
}

export interface LineSeries {
  name: string;
  /** [x, y] pairs; NaN y leaves a gap. */
  points: Array<[number, number]>;
  dashed?: boolean;
  /** A dash pattern ("dotted", or dash and gap lengths) that tells overlapping runs apart. */
  dash?: "solid" | "dashed" | "dotted" | number[];
  /** The point marker: circle, rect, triangle, diamond, … */
  symbol?: string;
  color?: string;
}

export interface LineChartSpec {
  title: string;
  subtitle?: string;
  xName: string;
  /** A continuous x (simulated hours) rather than whole rounds; default false. */
  continuousX?: boolean;
  yName: string;
  series: LineSeries[];
  /**
   * Shows accuracies in [0, 1] as percentages, on an axis fitted to the rounds' values. The
   * initial model (x = 0) is left below the axis when it would squeeze the rest, and the
   * subtitle then says so.
   */
  percent?: boolean;
  /** Switch to a log axis when positive values span more than 20× (a diverged run's loss). */
  logWhenWide?: boolean;
  /** A horizontal reference line, e.g. a target accuracy or an ε budget. */
  reference?: { value: number; label: string };
}

/** Lines over rounds: the shape of accuracy, loss and ε charts, for one run or several. */
export function lineChart(spec: LineChartSpec): Chart {
  const longest = Math.max(0, ...spec.series.map((s) => s.points.length));
  const scale = spec.percent ? 100 : 1;
  const at = (y: number) => (Number.isFinite(y) ? Number((y * scale).toPrecision(8)) : null);
  const reference = spec.reference !== undefined ? spec.reference.value * scale : undefined;
  const fit = spec.percent
    ? percentFit(spec.series.flatMap((s) => s.points).map(([x, y]): [number, number] => [x, y * scale]))
    : null;
  const values = spec.series.flatMap((s) => s.points.map(([, y]) => y * scale)).filter(Number.isFinite);
  const subtitle = [spec.subtitle, fit?.note].filter(Boolean).join("; ") || undefined;
  const f = frame(
    spec.title,
    subtitle,
    spec.series.map((s) => s.name),
  );
  const series: echarts.LineSeriesOption[] = spec.series.map((s, i) => ({
    type: "line",
    name: s.name,
    data: s.points.map(([x, y]) => [x, at(y)]),
    showSymbol: longest <= 40,
    symbolSize: 6,
    ...(s.symbol ? { symbol: s.symbol } : {}),
    lineStyle: { width: 2, type: s.dash ?? (s.dashed ? "dashed" : "solid") },
    ...(s.color ? { itemStyle: { color: s.color } } : {}),
    ...(i === 0 && spec.reference
      ? {
          markLine: {
            silent: true,
            symbol: "none",
            lineStyle: { color: "#6b7280", type: "dashed", width: 1 },
            label: { formatter: spec.reference.label, position: "insideStartTop", color: "#374151" },
            data: [{ yAxis: reference }],
          },
        }
      : {}),
  }));
  return renderChart(
    {
      ...f.option,
      xAxis: {
        type: "value",
        name: spec.xName,
        nameLocation: "middle",
        nameGap: 30,
        // Whole rounds: the tooltip's header says "3", not "3.00".
        ...(spec.continuousX ? {} : { minInterval: 1, axisPointer: { label: { precision: 0 } } }),
        min: "dataMin",
        max: "dataMax",
      },
      yAxis: {
        name: spec.yName,
        nameLocation: "middle",
        nameGap: 52,
        ...(fit
          ? percentAxis(fit.values, reference)
          : valueAxis(values, reference, spec.logWhenWide ? spec.yName : undefined)),
      },
      series,
    },
    sizeFor(f),
  );
}

/**
 * The percentages the accuracy axis is fitted to. The initial model (x = 0) usually scores near
 * chance; when including it would more than double the span of everything else, it is left
 * below the axis (the line enters from the bottom) and the subtitle gives its value.
 */
export function percentFit(points: ReadonlyArray<readonly [number, number]>): {
  values: number[];
  note?: string;
} {
  const finite = points.filter(([, y]) => Number.isFinite(y));
  const initial = finite.filter(([x]) => x === 0).map(([, y]) => y);
  const rest = finite.filter(([x]) => x !== 0).map(([, y]) => y);
  if (rest.length < 2 || initial.length === 0) return { values: finite.map(([, y]) => y) };
  const low = Math.min(...rest);
  const span = Math.max(...rest) - low;
  const below = initial.filter((y) => y < low - Math.max(span, 1));
  if (below.length === 0) return { values: finite.map(([, y]) => y) };
  const least = Math.min(...below).toFixed(1);
  const most = Math.max(...below).toFixed(1);
  // Runs that start from the same model share one value: "10.0 %", not "10.0–10.0 %".
  const shown = least === most ? `${least} %` : `${least}–${most} %`;
  return {
    values: [...rest, ...initial.filter((y) => !below.includes(y))],
    note: `round 0 (${shown}) is below the axis`,
  };
}

/** The step of about five ticks over `span`: 1, 2, 2.5 or 5 × 10^k. */
function niceStep(span: number): number {
  const raw = span / 5;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].find((m) => m * magnitude >= raw - 1e-12) ?? 10;
  return step * magnitude;
}

/** Percentages fitted to the data and reference, with a little room, within 0–100 %. */
export function percentAxis(
  values: readonly number[],
  reference: number | undefined,
): echarts.YAXisComponentOption {
  const all = reference !== undefined ? [...values, reference] : [...values];
  if (all.length === 0) return { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value} %" } };
  const low = Math.min(...all);
  const high = Math.max(...all);
  const span = Math.max(high - low, 0.5);
  const step = niceStep(span * 1.2);
  const min = Math.max(0, Math.floor((low - span * 0.08) / step) * step);
  const max = Math.min(100, Math.ceil((high + span * 0.08) / step) * step);
  const digits = step < 1 ? 1 : 0;
  return {
    type: "value",
    min: Number(min.toFixed(digits + 1)),
    max: Number(Math.max(max, min + step).toFixed(digits + 1)),
    interval: step,
    axisLabel: { formatter: "{value} %" },
  };
}

/** `logName`, when given, allows a log axis and names it. */
function valueAxis(
  values: number[],
  reference: number | undefined,
  logName: string | undefined,
): echarts.YAXisComponentOption {
  const positive = values.length > 0 && values.every((v) => v > 0);
  if (logName !== undefined && positive && Math.max(...values) / Math.min(...values) > 20) {
    return { type: "log", logBase: 10, name: `${logName} (log scale)` };
  }
  if (reference === undefined) return { type: "value", scale: true };
  // The reference line is not part of the data extent; keep it on the chart.
  return { type: "value", min: 0, max: niceCeiling(Math.max(reference, ...values) * 1.05) };
}

/** The next of 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10^k at or above `value`. */
export function niceCeiling(value: number): number {
  if (!(value > 0) || !Number.isFinite(value)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  const step = [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10].find((m) => m * magnitude >= value - 1e-12) ?? 10;
  return Number((step * magnitude).toPrecision(6));
}
