import { describe, expect, it } from "vitest";
import { FedsimError } from "../common/errors.js";
import { hydrateCharts, withFunctions } from "../scenarios/report/chart-runtime.js";
import { buildCompareHtml, compareSummaries, type LabelledRun } from "../scenarios/report/compare.js";
import { parseRunSummary, type ReportSummaryInput } from "../scenarios/report/summary-schema.js";
import { buildReportHtml } from "../scenarios/report-html.js";

/** A run with everything a researcher's report shows: configuration, client data, norms, times. */
function fullSummary(overrides: Partial<ReportSummaryInput> = {}): ReportSummaryInput {
  const accuracies = [0.951, 0.968, 0.974, 0.982];
  return {
    scenario: "mnist-cnn",
    backend: "native",
    strategy: "fedavg",
    seed: 1,
    clients: { connected: 100, sampledPerRound: 10 },
    config: {
      model: "mnist-cnn",
      dataset: "mnist",
      partition: "shards",
      "partition.shardsPerClient": 2,
      clients: 100,
      rounds: 4,
      "fit.epochs": 5,
      "fit.batchSize": 10,
      "fit.learningRate": 0.05,
      strategy: "fedavg",
      privacy: "none",
      seed: 1,
    },
    clientData: {
      clients: 100,
      numClasses: 10,
      sizes: { min: 600, max: 600, mean: 600, total: 60_000 },
      sizeHistogram: { edges: [600, 600], counts: [100] },
      shown: Array.from({ length: 50 }, (_, c) => ({
        client: c,
        labels: Array.from({ length: 10 }, (_, k) => (k === c % 10 || k === (c + 3) % 10 ? 300 : 0)),
      })),
    },
    initial: { accuracy: 0.098, loss: 2.3 },
    rounds: accuracies.map((accuracy, i) => ({
      round: i + 1,
      accuracy,
      loss: 0.3 - i * 0.05,
      participants: 10,
      failures: {},
      seconds: 30,
      startSeconds: i * 31,
      updateNorms: { count: 10, min: 1 + i, q1: 2 + i, median: 3 + i, q3: 4 + i, max: 6 + i, mean: 3.2 + i },
    })),
    final: { accuracy: 0.982, loss: 0.15 },
    seconds: 130,
    expectations: [],
    ...overrides,
  };
}

/** One chart's embedded option, by figure id. */
function optionOf(html: string, id: string): { option: Record<string, unknown>; tooltip: string } {
  const figure = new RegExp(
    `id="chart-${id}"[^>]*>[\\s\\S]*?<script[^>]*class="chart-option">([^<]*)</script>`,
  ).exec(html);
  expect(figure, id).not.toBeNull();
  return JSON.parse(figure?.[1] ?? "{}");
}

describe("the report's charts are interactive offline", () => {
  it("embeds ECharts' browser build and every chart's option, and the runtime redraws each with tooltips and zoom", () => {
    const html = buildReportHtml(fullSummary());
    // ECharts' own browser build travels inside the page.
    expect(html).toMatch(/<script>[\s\S]*echarts[\s\S]*<\/script>/);
    expect(html.length).toBeGreaterThan(500_000);
    const ids = [...html.matchAll(/<figure class="chart" id="chart-([\w-]+)" data-chart>/g)].map((m) => m[1]);
    expect(ids).toEqual([
      "accuracy",
      "loss",
      "participation",
      "client-labels",
      "client-sizes",
      "update-norms",
    ]);
    const figures = ids.map((id) => ({ id, ...optionOf(html, id) }));
    // What a page gives its script: each figure's JSON and a box holding the static SVG.
    const set: Array<Record<string, unknown>> = [];
    const host = {
      document: {
        querySelectorAll: () =>
          figures.map((f) => ({
            querySelector: (selector: string) =>
              selector === "script.chart-option"
                ? {
                    textContent: JSON.stringify({ option: f.option, height: 300, tooltip: f.tooltip }),
                    innerHTML: "",
                  }
                : { textContent: null, innerHTML: "<svg></svg>" },
          })),
      },
      echarts: {
        init: () => ({ setOption: (o: unknown) => set.push(o as Record<string, unknown>), resize: () => {} }),
      },
      addEventListener: () => {},
    };
    hydrateCharts(withFunctions, host);
    expect(set).toHaveLength(ids.length);
    for (const option of set) {
      expect(option.tooltip).toMatchObject({ trigger: expect.stringMatching(/axis|item/) });
      expect(option.toolbox).toMatchObject({ feature: { dataZoom: {}, restore: {} } });
      expect(option.dataZoom).toEqual([expect.objectContaining({ type: "inside" })]);
    }
  });

  it("ships the timeline's drawing function as a marker the runtime turns back into a function", () => {
    const summary = fullSummary({
      timeline: [
        { round: 1, clientId: "a", startSeconds: 0, seconds: 3, outcome: "ok" },
        { round: 2, clientId: "a", startSeconds: 31, seconds: 3, outcome: "timeout" },
      ],
    });
    const { option } = optionOf(buildReportHtml(summary), "timeline");
    const series = option.series as Array<{ renderItem: unknown }>;
    expect(series[0].renderItem).toBe("fedsim:timelineBar");
    const restored = withFunctions(option) as { series: Array<{ renderItem: unknown }> };
    expect(typeof restored.series[0].renderItem).toBe("function");
  });
});

describe("what a researcher keeps from a report", () => {
  it("fits the accuracy axis to the rounds, not to 10–100 %, and says where the initial model went", () => {
    const { option } = optionOf(buildReportHtml(fullSummary()), "accuracy");
    const axis = option.yAxis as { min: number; max: number };
    expect(axis.min).toBeGreaterThanOrEqual(90);
    expect(axis.max).toBeLessThanOrEqual(100);
    expect(JSON.stringify(option.title)).toContain("round 0 (9.8 %) is below the axis");
  });

  it("shows the configuration as a table, and says so when a summary has none", () => {
    const html = buildReportHtml(fullSummary());
    const table = /<h2>Configuration<\/h2>\n<table class="config">([\s\S]*?)<\/table>/.exec(html)?.[1] ?? "";
    for (const row of ['local epochs E</td><td class="text">5', 'batch size B</td><td class="text">10']) {
      expect(table).toContain(row);
    }
    expect(table).toContain('learning rate</td><td class="text">0.05');
    expect(table).toContain("partition.shardsPerClient");
    const old = buildReportHtml(fullSummary({ config: undefined }));
    expect(old).toContain("This summary carries no configuration");
  });

  it("draws each shown client's examples by label, and the size histogram when not every client is shown", () => {
    const html = buildReportHtml(fullSummary());
    const labels = optionOf(html, "client-labels").option;
    expect((labels.series as unknown[]).length).toBe(10);
    expect(JSON.stringify(labels.title)).toContain("the first 50 of 100 clients");
    expect(optionOf(html, "client-sizes").option.series).toEqual([
      expect.objectContaining({ type: "bar", data: [100] }),
    ]);
  });

  it("draws update norms per round as boxes, and explains their absence under DP", () => {
    const { option } = optionOf(buildReportHtml(fullSummary()), "update-norms");
    const [box] = option.series as Array<{ type: string; data: number[][] }>;
    expect(box.type).toBe("boxplot");
    expect(box.data[0]).toEqual([1, 2, 3, 4, 6]);
    const dp = fullSummary();
    const private_ = buildReportHtml({
      ...dp,
      config: { ...dp.config, privacy: "dp (central)" },
      rounds: dp.rounds.map(({ updateNorms: _n, ...r }) => r),
    });
    expect(private_).not.toContain('id="chart-update-norms"');
    expect(private_).toMatch(
      /id="no-update-norms">[^<]*differential privacy[^<]*does not see individual updates/,
    );
  });

  it("puts rounds on a wall-clock axis when asked, and refuses it for summaries without round start times", () => {
    const html = buildReportHtml(fullSummary(), { x: "wall-clock" });
    const { option } = optionOf(html, "accuracy");
    expect(JSON.stringify(option.title)).toContain("Test accuracy over wall-clock time");
    expect((option.xAxis as { name: string }).name).toBe("wall-clock seconds since the first round");
    const points = (option.series as Array<{ data: number[][] }>)[0].data.map(([x]) => x);
    expect(points).toEqual([0, 30, 61, 92, 123]);
    const old = fullSummary();
    const refused = (() => {
      try {
        buildReportHtml(
          { ...old, rounds: old.rounds.map(({ startSeconds: _s, ...r }) => r) },
          { x: "wall-clock" },
        );
      } catch (err) {
        return err;
      }
    })();
    expect(refused).toBeInstanceOf(FedsimError);
    expect((refused as FedsimError).details[0]).toMatch(/no start time/);
  });
});

describe("the compare page", () => {
  const run = (label: string, lr: number, accuracies: number[]): LabelledRun => {
    const summary = fullSummary();
    return {
      label,
      dir: `runs/${label}`,
      summary: parseRunSummary({
        ...summary,
        config: { ...summary.config, "fit.learningRate": lr },
        rounds: summary.rounds.map((r, i) => ({ ...r, accuracy: accuracies[i] })),
        final: { accuracy: accuracies[3], loss: 0.1 },
      }),
    };
  };

  it("gives each run its own line style, tabulates the configuration differences and phrases rounds to target", () => {
    const runs = [run("a", 0.05, [0.9, 0.95, 0.97, 0.98]), run("b", 0.1, [0.9, 0.96, 0.98, 0.985])];
    const html = buildCompareHtml(runs, compareSummaries(runs, 0.97));
    const series = optionOf(html, "accuracy").option.series as Array<{
      lineStyle: { type: unknown };
      symbol: string;
    }>;
    expect(series[0].lineStyle.type).not.toEqual(series[1].lineStyle.type);
    expect(series[0].symbol).not.toBe(series[1].symbol);
    const diff =
      /<h2>Configuration differences<\/h2>\n<table class="config">([\s\S]*?)<\/table>/.exec(html)?.[1] ?? "";
    expect(diff).toContain('<th class="text">a</th><th class="text">b</th>');
    expect(diff).toContain('learning rate</td><td class="text">0.05</td><td class="text">0.1</td>');
    // Only what differs: the shared model is not a row.
    expect(diff).not.toContain(">model<");
    expect(html).toContain('<td class="num">round 3</td>');
    expect(html).toContain('<td class="num">in round 3 (2.5)</td>');
  });
});
