import { mkdirSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compareRuns } from "../scenarios/report/compare.js";
import type { ReportSummaryInput } from "../scenarios/report/summary-schema.js";
import { writeReport } from "../scenarios/report-html.js";
import { ARTIFACTS_DIR, type Browser, chromiumAvailable, launchChromium } from "./helpers/browser.js";

/**
 * The report and compare pages as a researcher opens them: files in Chromium, offline. The charts
 * must come alive (ECharts inlined in the page), fit the accuracy axis to the data, answer a hover
 * with a tooltip, and sit beside the configuration tables.
 */

const PAGE_LOAD_MS = 60_000;
const ROUNDS = 6;

/** A finished run: accuracy climbing from 62 % to 86 % after a near-chance initial model. */
function summary(strategy: string, learningRate: number, lift: number): ReportSummaryInput {
  const rounds = Array.from({ length: ROUNDS }, (_, i) => {
    const round = i + 1;
    return {
      round,
      accuracy: 0.58 + lift + 0.04 * round,
      loss: 1.2 - 0.1 * round,
      participants: 4,
      sampled: 4,
      failures: {},
      bytesSent: 800_000,
      bytesReceived: 790_000,
      seconds: 2,
    };
  });
  const last = rounds[rounds.length - 1];
  return {
    scenario: `browser-${strategy}`,
    backend: "cpu",
    strategy,
    seed: 7,
    clients: { connected: 4, sampledPerRound: 4 },
    config: {
      model: "mnist-2nn",
      dataset: "mnist",
      partition: "dirichlet",
      "partition.alpha": 0.5,
      clients: 4,
      rounds: ROUNDS,
      "fit.epochs": 1,
      "fit.batchSize": 10,
      "fit.learningRate": learningRate,
      strategy,
      seed: 7,
    },
    initial: { accuracy: 0.1, loss: 2.3 },
    rounds,
    final: { accuracy: last.accuracy, loss: last.loss },
    seconds: 2 * ROUNDS,
    expectations: [],
  };
}

let dir: string;
let browser: Browser | undefined;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "fedsim-report-browser-"));
});
afterAll(async () => {
  await browser?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Opens a file in a fresh page, recording every request and page error. */
async function open(file: string): Promise<{ page: Page; requested: string[]; errors: string[] }> {
  browser ??= await launchChromium();
  const page = await browser.context.newPage();
  const requested: string[] = [];
  const errors: string[] = [];
  page.on("request", (req) => requested.push(req.url()));
  page.on("pageerror", (err) => errors.push(err.message));
  await page.goto(`file://${file}`, { timeout: PAGE_LOAD_MS });
  return { page, requested, errors };
}

/** Waits until ECharts has redrawn the chart (the server-rendered SVG has no instance). */
async function hydrated(page: Page, id: string): Promise<void> {
  await page.locator(`#chart-${id} .chart-box[_echarts_instance_]`).waitFor({ timeout: PAGE_LOAD_MS });
}

/** The y-axis labels of a percentage chart as drawn, in %. */
async function percentLabels(page: Page, id: string): Promise<number[]> {
  const texts = await page.locator(`#chart-${id} .chart-box svg text`).allTextContents();
  return texts.filter((t) => /^\d+(\.\d+)? %$/.test(t.trim())).map((t) => Number.parseFloat(t));
}

/** Hovers the middle of the chart's plot and returns the tooltip ECharts shows there. */
async function tooltipOnHover(page: Page, id: string): Promise<string> {
  const box = await page.locator(`#chart-${id} .chart-box`).boundingBox();
  if (!box) throw new Error(`chart ${id} has no box`);
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  // ECharts makes its tooltip element on the first hover: an HTML box over the SVG.
  const tooltip = page.locator(`#chart-${id} .chart-box > div:not(:has(svg))`).last();
  await tooltip.waitFor({ state: "visible", timeout: PAGE_LOAD_MS });
  return (await tooltip.textContent()) ?? "";
}

/** Requests that left the page's own file: none may, since runs are often offline. */
function network(requested: readonly string[]): string[] {
  return requested.filter((u) => !u.startsWith("file://") && !u.startsWith("data:"));
}

/** Every chart of the page has been redrawn by ECharts. */
async function allHydrated(page: Page): Promise<number> {
  const figures = await page.locator("figure.chart[data-chart]").count();
  await expect.poll(() => page.locator("figure.chart .chart-box[_echarts_instance_]").count()).toBe(figures);
  return figures;
}

/** The rows of the page's configuration table: label → cells. */
async function configRows(page: Page): Promise<Map<string, string[]>> {
  const rows = await page
    .locator("table.config tbody tr")
    .evaluateAll((trs) =>
      trs.map((tr) =>
        Array.from(tr.querySelectorAll("td"), (td: { textContent: string | null }) => td.textContent ?? ""),
      ),
    );
  return new Map(rows.map(([label, ...cells]) => [label, cells]));
}

describe("the report and compare pages in a real browser", () => {
  it.runIf(chromiumAvailable)(
    "render their charts offline, fit the accuracy axis to the data, show tooltips and the configuration tables",
    async () => {
      const runs = [
        { name: "fedavg", summary: summary("fedavg", 0.05, 0) },
        { name: "fedprox", summary: summary("fedprox", 0.02, 0.03) },
      ];
      const dirs: string[] = [];
      for (const run of runs) {
        const runDir = path.join(dir, run.name);
        await mkdir(runDir, { recursive: true });
        await writeFile(path.join(runDir, "summary.json"), JSON.stringify(run.summary));
        dirs.push(runDir);
      }
      const report = await writeReport(dirs[0]);
      const compare = path.join(dir, "compare.html");
      await compareRuns(dirs, { out: compare, target: 0.7 });
      mkdirSync(ARTIFACTS_DIR, { recursive: true });
      const accuracies = runs.map((run) => run.summary.rounds.map((r) => (r.accuracy ?? Number.NaN) * 100));

      // The report of one run.
      const r = await open(report);
      await hydrated(r.page, "accuracy");
      expect(await allHydrated(r.page)).toBeGreaterThanOrEqual(3);
      const labels = await percentLabels(r.page, "accuracy");
      // Fitted: the rounds' accuracies fill the axis, not a 0-100 % frame (round 0 stays below it).
      expect(Math.min(...labels)).toBeGreaterThan(10);
      expect(Math.min(...labels)).toBeLessThanOrEqual(Math.min(...accuracies[0]));
      expect(Math.max(...labels)).toBeGreaterThanOrEqual(Math.max(...accuracies[0]));
      expect(Math.max(...labels)).toBeLessThan(100);
      const tip = await tooltipOnHover(r.page, "accuracy");
      // Its header names the round under the cursor as a whole number.
      expect(tip).toMatch(/^\d+\s*test accuracy/);
      const shown = /test accuracy\s*(\d+(?:\.\d+)?)/.exec(tip);
      expect(shown, tip).not.toBeNull();
      expect(accuracies[0].map((a) => a.toFixed(2))).toContain(Number(shown?.[1]).toFixed(2));
      const config = await configRows(r.page);
      expect(config.get("model")).toEqual(["mnist-2nn"]);
      expect(config.get("local epochs E")).toEqual(["1"]);
      expect(config.get("learning rate")).toEqual(["0.05"]);
      expect(config.get("strategy")).toEqual(["fedavg"]);
      expect(r.errors).toEqual([]);
      expect(network(r.requested)).toEqual([]);
      await r.page.screenshot({ path: path.join(ARTIFACTS_DIR, "report.png"), fullPage: true });

      // The compare page of both runs.
      const c = await open(compare);
      await hydrated(c.page, "accuracy");
      expect(await allHydrated(c.page)).toBeGreaterThanOrEqual(2);
      const compareLabels = await percentLabels(c.page, "accuracy");
      expect(Math.min(...compareLabels)).toBeGreaterThan(10);
      expect(Math.max(...compareLabels)).toBeGreaterThanOrEqual(Math.max(...accuracies.flat()));
      const both = await tooltipOnHover(c.page, "accuracy");
      expect(both).toMatch(/^\d+\s*fedavg/);
      // Both runs start from the same model: its accuracy is named once.
      await expect(c.page.locator("#chart-accuracy").textContent()).resolves.toContain(
        "round 0 (10.0 %) is below the axis",
      );
      expect(both).toContain("fedprox");
      const differences = await configRows(c.page);
      expect(differences.get("strategy")).toEqual(["fedavg", "fedprox"]);
      expect(differences.get("learning rate")).toEqual(["0.05", "0.02"]);
      expect(differences.has("model")).toBe(false);
      expect(c.errors).toEqual([]);
      expect(network(c.requested)).toEqual([]);
      await c.page.screenshot({ path: path.join(ARTIFACTS_DIR, "compare.png"), fullPage: true });
    },
    300_000,
  );
});
