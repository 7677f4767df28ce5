import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { reportCommand } from "../cli/commands/report.js";
import { handleError } from "../cli/handle-error.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { CHART_TITLES } from "../scenarios/report/charts.js";
import type { ReportSummaryInput } from "../scenarios/report/summary-schema.js";
import { selectTimeline } from "../scenarios/report/timeline-chart.js";
import { buildReportHtml, writeReport } from "../scenarios/report-html.js";

/** A summary in the new format: clients as an object, failures by kind, bytes, a timeline. */
function newSummary(opts: {
  clients: number;
  rounds: number;
  dp?: boolean;
  perRound?: number;
}): ReportSummaryInput {
  const perRound = opts.perRound ?? Math.min(opts.clients, 10);
  const rounds = [];
  const timeline = [];
  let clock = 0;
  for (let r = 1; r <= opts.rounds; r++) {
    for (let k = 0; k < perRound; k++) {
      const client = (r * 7 + k * 13) % opts.clients;
      const outcome = k === 0 && r % 2 === 0 ? "timeout" : k === 1 && r === 3 ? "disconnect" : "ok";
      timeline.push({
        round: r,
        clientId: `c${String(client).padStart(4, "0")}-${"x".repeat(20)}`,
        label: `client ${client}`,
        startSeconds: clock + k * 0.01,
        seconds: 1 + (client % 5) * 0.3,
        trainSeconds: 0.8,
        outcome,
      });
    }
    const timeouts = r % 2 === 0 ? 1 : 0;
    const disconnects = r === 3 ? 1 : 0;
    rounds.push({
      round: r,
      accuracy: 0.5 + 0.4 * (r / opts.rounds),
      loss: 1.5 - r * 0.1,
      participants: perRound - timeouts - disconnects,
      sampled: perRound,
      failures: { timeout: timeouts, disconnect: disconnects },
      dropouts: disconnects,
      trainLoss: 1.4 - r * 0.1,
      bytesSent: 400_000 * perRound,
      bytesReceived: 390_000 * (perRound - timeouts),
      seconds: 2.5,
      ...(opts.dp ? { epsilon: 0.5 * Math.sqrt(r), clipNorm: 1 } : {}),
    });
    clock += 2.5;
  }
  return {
    scenario: "synthetic",
    backend: "wasm",
    training: { path: "tfjs", reason: "the active backend is wasm, not native" },
    strategy: "fedavg",
    seed: 3,
    clients: { connected: opts.clients, sampledPerRound: perRound },
    initial: { accuracy: 0.1, loss: 2.3 },
    rounds,
    final: {
      accuracy: rounds[rounds.length - 1].accuracy,
      loss: rounds[rounds.length - 1].loss,
      ...(opts.dp ? { epsilon: rounds[rounds.length - 1].epsilon, delta: 1e-5 } : {}),
    },
    seconds: clock + 1,
    stopReason: "privacy budget spent",
    expectations: [
      { name: "finalAccuracy", passed: true, detail: "finalAccuracy 0.9000 ≥ 0.85" },
      { name: "epsilon", passed: false, detail: "epsilon 9.1 ≤ 8" },
    ],
    timeline,
  };
}

/** The format of summaries written before failures had kinds: clients and failures are numbers. */
const OLD_SUMMARY = {
  scenario: "quickstart",
  backend: "wasm",
  strategy: "fedavg",
  seed: 42,
  clients: 10,
  initial: { loss: 2.35, accuracy: 0.1005 },
  rounds: [
    { round: 1, accuracy: 0.8335, loss: 0.72, participants: 10, failures: 0, seconds: 6.6 },
    { round: 2, accuracy: 0.8875, loss: 0.43, participants: 9, failures: 1, seconds: 2.8 },
    { round: 3, accuracy: 0.9035, loss: 0.33, participants: 10, failures: 0, seconds: 2.5 },
  ],
  final: { accuracy: 0.9035, loss: 0.33 },
  seconds: 30.6,
  expectations: [{ name: "finalAccuracy", passed: true, detail: "finalAccuracy 0.9035 ≥ 0.9" }],
};

/** The <figure> of one chart, by its id; undefined when the page has no such chart. */
function chart(html: string, id: string): string | undefined {
  const match = new RegExp(`<figure class="chart" id="chart-${id}"[^>]*>([\\s\\S]*?)</figure>`).exec(html);
  return match?.[1];
}

/** Data items drawn by the chart's series (legend icons excluded): one per bar or point. */
function drawnItems(svg: string): number {
  const items = new Set<string>();
  const re = /ecmeta_series_index="(\d+)" ecmeta_data_index="(\d+)" ecmeta_ssr_type="chart"/g;
  for (const m of svg.matchAll(re)) items.add(`${m[1]}:${m[2]}`);
  return items.size;
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "fedsim-report-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("buildReportHtml", () => {
  it("draws every chart of a full run, each an SVG with its title, and the header facts", () => {
    const html = buildReportHtml(newSummary({ clients: 12, rounds: 6, dp: true }));
    const expected = {
      accuracy: CHART_TITLES.accuracy,
      loss: CHART_TITLES.loss,
      epsilon: CHART_TITLES.epsilon,
      participation: CHART_TITLES.participation,
      traffic: CHART_TITLES.traffic,
      timeline: CHART_TITLES.timeline,
    };
    for (const [id, title] of Object.entries(expected)) {
      const figure = chart(html, id);
      expect(figure, id).toBeDefined();
      expect(figure).toMatch(/<svg [^>]*viewBox/);
      expect(figure).toContain(`>${title}</text>`);
    }
    expect(html.match(/<svg /g)).toHaveLength(6);
    // Header: what ran and how it ended, with the expectations' verdicts.
    for (const fact of [
      "synthetic",
      "fedavg",
      "wasm",
      "tfjs autodiff",
      "12 (10 per round)",
      "90.00 %",
      "privacy budget spent",
    ]) {
      expect(html).toContain(fact);
    }
    expect(html).toMatch(/δ = 1e-5/);
    expect(html).toContain('<span class="badge pass">PASS</span>finalAccuracy 0.9000 ≥ 0.85');
    expect(html).toContain('<span class="badge fail">FAIL</span>epsilon 9.1 ≤ 8');
    // Series the run has: train loss, failure kinds, sampled and bytes.
    expect(chart(html, "loss")).toContain(">train loss</text>");
    expect(chart(html, "participation")).toContain(">timed out</text>");
    expect(chart(html, "participation")).toContain(">disconnected</text>");
    expect(chart(html, "participation")).toContain(">sampled</text>");
    expect(chart(html, "traffic")).toContain(">MB</text>");
  });

  it("draws the ε chart only when the rounds carry ε", () => {
    const withDp = buildReportHtml(newSummary({ clients: 5, rounds: 3, dp: true }));
    const without = buildReportHtml(newSummary({ clients: 5, rounds: 3 }));
    expect(chart(withDp, "epsilon")).toContain(`>${CHART_TITLES.epsilon}</text>`);
    expect(chart(without, "epsilon")).toBeUndefined();
    expect(without).not.toContain(CHART_TITLES.epsilon);
  });

  it("draws one timeline bar per fit when the clients fit on the chart", () => {
    const summary = newSummary({ clients: 8, rounds: 4, perRound: 5 });
    const html = buildReportHtml(summary);
    const timeline = chart(html, "timeline") ?? "";
    // One bar per fit, and one dashed line per round start after the first two, labelled.
    expect(drawnItems(timeline)).toBe((summary.timeline?.length ?? 0) + 4);
    for (const round of [1, 2, 3, 4]) expect(timeline).toContain(`>r${round}</text>`);
    expect(timeline).toContain(">client 3</text>");
    expect(timeline).not.toContain("busiest");
  });

  it("caps the timeline to the busiest clients with 1,000 clients, and says so", () => {
    const summary = newSummary({ clients: 1000, rounds: 5, perRound: 300 });
    const entries = summary.timeline ?? [];
    // One client far busier than the rest must be among those kept.
    entries.push({
      round: 5,
      clientId: "straggler",
      label: "the straggler",
      startSeconds: 0,
      seconds: 500,
      outcome: "timeout",
    });
    const selection = selectTimeline(entries, 60);
    expect(selection.rows).toHaveLength(60);
    expect(selection.rows).toContain("the straggler");
    const distinct = new Set(entries.map((e) => e.clientId)).size;
    expect(distinct).toBeGreaterThan(800);
    expect(selection.totalClients).toBe(distinct);
    const kept = new Set(selection.bars.map((b) => b.entry.clientId));
    expect(kept.size).toBe(60);
    expect(selection.bars.length).toBe(entries.filter((e) => kept.has(e.clientId)).length);

    const html = buildReportHtml(summary);
    const timeline = chart(html, "timeline") ?? "";
    expect(timeline).toContain(`showing the 60 busiest of ${distinct.toLocaleString("en")} clients`);
    // The kept clients' fits, and a boundary line per round start.
    expect(drawnItems(timeline)).toBe(selection.bars.length + 5);
    expect(buildReportHtml(summary, { maxTimelineClients: 10 })).toContain("showing the 10 busiest of");
  });

  it("renders an old-format summary: clients a number, failures a number, no timeline or bytes", () => {
    const html = buildReportHtml(OLD_SUMMARY);
    for (const id of ["accuracy", "loss", "participation"]) expect(chart(html, id), id).toMatch(/<svg /);
    for (const id of ["epsilon", "traffic", "timeline"]) expect(chart(html, id), id).toBeUndefined();
    // A failure without a kind is stacked as "failed".
    expect(chart(html, "participation")).toContain(">failed</text>");
    expect(html).toContain("<dd>10</dd>");
    expect(html).toContain("after the last round");
  });

  it("reads null metrics (NaN in JSON) as gaps instead of refusing the run", () => {
    const diverged = JSON.parse(
      JSON.stringify({ ...OLD_SUMMARY, rounds: [{ ...OLD_SUMMARY.rounds[0], loss: Number.NaN }] }),
    );
    expect(diverged.rounds[0].loss).toBeNull();
    expect(chart(buildReportHtml(diverged), "loss")).toMatch(/<svg /);
  });

  it("is self-contained and escapes the run's text", () => {
    const html = buildReportHtml({
      ...OLD_SUMMARY,
      scenario: "<script>alert(1)</script>",
      stopReason: 'a "b" & c',
    });
    expect(html).not.toContain("<script>alert");
    expect(html).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
    expect(html).toContain("a &quot;b&quot; &amp; c");
    // The only scripts are inline: ECharts' browser build, the chart runtime, each chart's option.
    const scripts = html.match(/<script[^>]*>/g) ?? [];
    expect(scripts.filter((tag) => tag === "<script>")).toHaveLength(2);
    for (const tag of scripts)
      expect(["<script>", '<script type="application/json" class="chart-option">']).toContain(tag);
    // Only in-document references (SVG clip paths: url(#id)); nothing to fetch.
    const markup = html.replace(/<script[^>]*>[\s\S]*?<\/script>/g, "");
    expect(markup).not.toMatch(/<link|\ssrc=|\shref=|@import|url\((?!#)/i);
    expect(html).toContain("Content-Security-Policy");
    expect(html).toMatch(/script-src 'unsafe-inline'[^"]*"/);
    expect(html).not.toMatch(/connect-src|script-src [^;"]*(https?:|\*)/);
  });

  it("refuses a summary that is not one, naming the field", () => {
    const broken = { ...OLD_SUMMARY, rounds: [{ ...OLD_SUMMARY.rounds[0], participants: "ten" }] };
    try {
      buildReportHtml(broken as unknown as ReportSummaryInput);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(FedsimError);
      expect((err as FedsimError).code).toBe(ErrorCode.INVALID_CONFIG);
      expect((err as FedsimError).details.join("\n")).toMatch(/rounds\.0\.participants/);
    }
  });
});

describe("writeReport and `fedsim report`", () => {
  async function runDir(name: string, content: string | null): Promise<string> {
    const dir = path.join(tmp, name);
    await mkdir(dir, { recursive: true });
    if (content !== null) await writeFile(path.join(dir, "summary.json"), content);
    return dir;
  }

  async function refusal(dir: string): Promise<FedsimError> {
    const err = await writeReport(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FedsimError);
    expect((err as FedsimError).code).toBe(ErrorCode.INVALID_CONFIG);
    return err as FedsimError;
  }

  it("writes DIR/report.html from DIR/summary.json and returns its path", async () => {
    const dir = await runDir("good", JSON.stringify(newSummary({ clients: 6, rounds: 3 })));
    const file = await writeReport(dir);
    expect(file).toBe(path.join(dir, "report.html"));
    const html = await readFile(file, "utf8");
    expect(html.startsWith("<!doctype html>")).toBe(true);
    expect(chart(html, "timeline")).toMatch(/<svg /);
  });

  it("refuses a missing directory, a missing summary, bad JSON and a foreign file, naming the file", async () => {
    expect((await refusal(path.join(tmp, "nowhere"))).message).toContain("run directory not found");
    const empty = await runDir("empty", null);
    expect((await refusal(empty)).message).toBe(`no summary.json in ${empty}`);
    const badJson = await runDir("bad-json", "{ not json");
    expect((await refusal(badJson)).message).toBe(`${path.join(badJson, "summary.json")} is not valid JSON`);
    const foreign = await runDir("foreign", JSON.stringify({ name: "package", version: "1.0.0" }));
    const err = await refusal(foreign);
    expect(err.message).toBe(`${path.join(foreign, "summary.json")} is not a fedsim run summary`);
    expect(err.details.some((d) => d.includes("summary.json: scenario:"))).toBe(true);
    expect(err.details.some((d) => d.includes("summary.json: rounds:"))).toBe(true);
  });

  it("the command prints the report's path; a bad directory exits 2", async () => {
    const dir = await runDir("cli", JSON.stringify(OLD_SUMMARY));
    const out: string[] = [];
    const write = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
      out.push(String(chunk));
      return true;
    });
    const quiet = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      await reportCommand().exitOverride().parseAsync([dir], { from: "user" });
      expect(out.join("")).toBe(`${path.join(dir, "report.html")}\n`);
      const err = await reportCommand()
        .exitOverride()
        .parseAsync([path.join(tmp, "missing")], { from: "user" })
        .catch((e: unknown) => e);
      expect(handleError(err)).toBe(2);
    } finally {
      write.mockRestore();
      quiet.mockRestore();
    }
  });
});
