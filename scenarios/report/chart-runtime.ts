/**
 * What makes the report's charts interactive in a browser, offline: ECharts' own browser build,
 * read from the installed package and inlined, plus a small script that redraws each chart from
 * its option (embedded as JSON beside the server-rendered SVG) with tooltips, box zoom and a
 * reset. Without scripts (a viewer that blocks them, print preview) the SVG stays.
 *
 * `withFunctions` and `hydrateCharts` run in the browser as their own source text, so they use
 * nothing from outside their bodies.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

/**
 * Options travel as JSON, so the few functions a chart needs are named by markers
 * ("fedsim:timelineBar") and put back here, on the server before rendering and in the browser.
 */
export function withFunctions(option: unknown): unknown {
  const escapeText = (text: unknown) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  const seconds = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(1));
  const named: Record<string, unknown> = {
    // One bar per fit: [row, start, end, round, client]; the series colour is the outcome's.
    "fedsim:timelineBar": (
      _params: unknown,
      api: {
        value(i: number): unknown;
        coord(p: number[]): number[];
        size?(p: number[]): unknown;
        visual(key: string): unknown;
      },
    ) => {
      const row = Number(api.value(0));
      const start = api.coord([Number(api.value(1)), row]);
      const end = api.coord([Number(api.value(2)), row]);
      const band = api.size ? (api.size([0, 1]) as number[])[1] : 10;
      const height = band * 0.7;
      return {
        type: "rect",
        shape: { x: start[0], y: start[1] - height / 2, width: Math.max(1, end[0] - start[0]), height },
        // A thin white edge keeps back-to-back fits of one client apart.
        style: { fill: api.visual("color"), stroke: "#ffffff", lineWidth: 0.5 },
      };
    },
    "fedsim:timelineTooltip": (params: { marker?: string; seriesName?: string; value?: unknown[] }) => {
      const v = params.value ?? [];
      const start = Number(v[1]);
      const end = Number(v[2]);
      return `${params.marker ?? ""}${escapeText(v[4])}: ${escapeText(params.seriesName)}<br>round ${escapeText(v[3])}, ${seconds(start)} → ${seconds(end)} (${seconds(end - start)})`;
    },
    // Draws nothing: a series that only carries the rounds' boundary lines.
    "fedsim:none": () => null,
    "fedsim:value": (v: unknown) =>
      typeof v === "number" ? String(Number(v.toPrecision(5))) : escapeText(v),
  };
  const walk = (value: unknown): unknown => {
    if (typeof value === "string" && value.startsWith("fedsim:") && value in named) return named[value];
    if (Array.isArray(value)) return value.map(walk);
    if (value !== null && typeof value === "object") {
      const out: Record<string, unknown> = {};
      for (const [key, inner] of Object.entries(value)) out[key] = walk(inner);
      return out;
    }
    return value;
  };
  return walk(option);
}

/** The parts of a page and of ECharts that `hydrateCharts` touches. */
interface ChartHost {
  document: {
    querySelectorAll(selector: string): ArrayLike<{
      querySelector(selector: string): { textContent: string | null; innerHTML: string } | null;
    }>;
  };
  echarts?: {
    init(
      box: unknown,
      theme: null,
      options: { renderer: string; height: number },
    ): { setOption(option: unknown): void; resize(): void };
  };
  addEventListener(event: string, listener: () => void): void;
}

/**
 * Redraws every chart of the page with ECharts, adding what a static SVG cannot: tooltips,
 * zooming (the toolbox's box zoom, or shift + wheel) and a reset, and the SVG download.
 */
export function hydrateCharts(restore: (option: unknown) => unknown, host: ChartHost): void {
  const echarts = host.echarts;
  if (!echarts) return;
  const charts: Array<{ resize(): void }> = [];
  const figures = host.document.querySelectorAll("figure.chart[data-chart]");
  for (let i = 0; i < figures.length; i++) {
    const figure = figures[i];
    const data = figure.querySelector("script.chart-option");
    const box = figure.querySelector(".chart-box");
    if (!data || !box || !data.textContent) continue;
    const spec = JSON.parse(data.textContent) as {
      option: Record<string, unknown>;
      height: number;
      tooltip: "axis" | "item";
    };
    const option = restore(spec.option) as Record<string, unknown>;
    option.tooltip = {
      trigger: spec.tooltip,
      confine: true,
      valueFormatter: restore("fedsim:value"),
      ...((option.tooltip as object | undefined) ?? {}),
    };
    option.toolbox = {
      right: 12,
      top: 4,
      feature: {
        dataZoom: { title: { zoom: "zoom (drag a box)", back: "undo zoom" } },
        restore: { title: "reset" },
        saveAsImage: { type: "svg", title: "save as SVG" },
      },
    };
    option.dataZoom = [{ type: "inside", xAxisIndex: 0, zoomOnMouseWheel: "shift", moveOnMouseWheel: false }];
    box.innerHTML = "";
    const chart = echarts.init(box, null, { renderer: "svg", height: spec.height });
    chart.setOption(option);
    charts.push(chart);
  }
  host.addEventListener("resize", () => {
    for (const chart of charts) chart.resize();
  });
}

let cachedLibrary: string | undefined;

/** ECharts' browser build from the installed package, safe to inline in a <script> element. */
function echartsLibrary(): string {
  if (cachedLibrary === undefined) {
    const require = createRequire(import.meta.url);
    const main = require.resolve("echarts");
    const file = path.join(path.dirname(main), "echarts.min.js");
    cachedLibrary = readFileSync(file, "utf8").replace(/<\/script/gi, "<\\/script");
  }
  return cachedLibrary;
}

/** The two inline scripts every report page ends with. */
export function chartScripts(): string {
  return [
    `<script>${echartsLibrary()}</script>`,
    `<script>(${hydrateCharts.toString()})(${withFunctions.toString()}, window);</script>`,
  ].join("\n");
}
