/**
 * ECharts rendered to SVG strings on the server (no DOM, no canvas), plus the chart shapes the
 * report and compare pages share. Every chart carries its title inside the SVG, so a saved SVG
 * still says what it shows.
 */
import * as echarts from "echarts";

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

/** One chart, one SVG string. The instance is disposed even if rendering throws. */
export function renderSvg(option: echarts.EChartsOption, size: ChartSize): string {
  const chart = echarts.init(null, null, {
    renderer: "svg",
    ssr: true,
    width: size.width,
    height: size.height,
  });
  try {
    chart.setOption({ animation: false, ...option });
    return chart.renderToSVGString();
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
  /** Shows accuracies in [0, 1] as percentages on 10 % (or finer) ticks. */
  percent?: boolean;
  /** Switch to a log axis when positive values span more than 20× (a diverged run's loss). */
  logWhenWide?: boolean;
  /** A horizontal reference line, e.g. a target accuracy or an ε budget. */
  reference?: { value: number; label: string };
}

/** Lines over rounds: the shape of accuracy, loss and ε charts, for one run or several. */
export function lineChart(spec: LineChartSpec): string {
  const longest = Math.max(0, ...spec.series.map((s) => s.points.length));
  const values = spec.series.flatMap((s) => s.points.map(([, y]) => y)).filter(Number.isFinite);
  const reference = spec.reference?.value;
  const f = frame(
    spec.title,
    spec.subtitle,
    spec.series.map((s) => s.name),
  );
  const series: echarts.LineSeriesOption[] = spec.series.map((s, i) => ({
    type: "line",
    name: s.name,
    data: s.points.map(([x, y]) => [x, Number.isFinite(y) ? y : null]),
    showSymbol: longest <= 40,
    symbolSize: 5,
    lineStyle: { width: 2, ...(s.dashed ? { type: "dashed" } : {}) },
    ...(s.color ? { itemStyle: { color: s.color } } : {}),
    ...(i === 0 && spec.reference
      ? {
          markLine: {
            silent: true,
            symbol: "none",
            lineStyle: { color: "#6b7280", type: "dashed", width: 1 },
            label: { formatter: spec.reference.label, position: "insideStartTop", color: "#374151" },
            data: [{ yAxis: spec.reference.value }],
          },
        }
      : {}),
  }));
  return renderSvg(
    {
      ...f.option,
      xAxis: {
        type: "value",
        name: spec.xName,
        nameLocation: "middle",
        nameGap: 30,
        ...(spec.continuousX ? {} : { minInterval: 1 }),
        min: "dataMin",
        max: "dataMax",
      },
      yAxis: {
        name: spec.yName,
        nameLocation: "middle",
        nameGap: 52,
        ...(spec.percent
          ? percentAxis(values, reference)
          : valueAxis(values, reference, spec.logWhenWide ? spec.yName : undefined)),
      },
      series,
    },
    sizeFor(f),
  );
}

/** Accuracy in [0, 1] shown as percentages, between whole tens around the data and reference. */
function percentAxis(values: number[], reference: number | undefined): echarts.YAXisComponentOption {
  const all = reference !== undefined ? [...values, reference] : values;
  const low = all.length > 0 ? Math.max(0, Math.floor(Math.min(...all) * 10 - 1e-9) / 10) : 0;
  const high = all.length > 0 ? Math.min(1, Math.ceil(Math.max(...all) * 10 + 1e-9) / 10) : 1;
  const span = Math.max(0.1, high - low);
  const interval = span > 0.5 ? 0.1 : span > 0.2 ? 0.05 : 0.02;
  return {
    type: "value",
    min: low,
    max: Math.max(high, low + 0.1),
    interval,
    axisLabel: { formatter: (v: number) => `${Math.round(v * 100)} %` },
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
