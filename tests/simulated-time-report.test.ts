import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { compareCommand } from "../cli/commands/compare.js";
import { reportCommand } from "../cli/commands/report.js";
import { handleError } from "../cli/handle-error.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { RunProgress } from "../scenarios/progress.js";
import { CHART_TITLES } from "../scenarios/report/charts.js";
import { compareRuns, compareSummaries, formatCompareTable, loadRuns } from "../scenarios/report/compare.js";
import { xAtTarget } from "../scenarios/report/rounds-to-target.js";
import { parseRunSummary } from "../scenarios/report/summary-schema.js";
import { chooseXAxis } from "../scenarios/report/x-axis.js";
import { buildTimeline, formatTable, summaryRound } from "../scenarios/report.js";
import { buildReportHtml } from "../scenarios/report-html.js";
import type { RoundRecord } from "../server/round-record.js";

/** A run summary; with `roundHours`, a run on the virtual clock whose rounds take those simulated hours. */
function summary(accuracies: number[], roundHours?: number[]) {
  let clock = 0;
  const rounds = accuracies.map((accuracy, i) => {
    const hours = roundHours?.[i];
    const simulated = hours !== undefined ? { simulatedStart: clock, simulatedSeconds: hours * 3600 } : {};
    clock += (hours ?? 0) * 3600;
    return {
      round: i + 1,
      accuracy,
      loss: 2 - accuracy,
      participants: 4,
      failures: {},
      seconds: 0.5,
      ...simulated,
    };
  });
  const timeline = roundHours
    ? rounds.map((r) => ({
        round: r.round,
        clientId: "client-a",
        startSeconds: r.round * 0.5,
        seconds: 0.4,
        outcome: "ok",
        simulatedSentAt: r.simulatedStart ?? 0,
        simulatedArrivedAt: (r.simulatedStart ?? 0) + (r.simulatedSeconds ?? 0),
      }))
    : [];
  return {
    scenario: "sim",
    backend: "cpu",
    strategy: "fedavg",
    seed: 1,
    clients: { connected: 4, sampledPerRound: 4 },
    initial: { accuracy: 0.1, loss: 2.3 },
    rounds,
    final: { accuracy: accuracies.at(-1) ?? 0, loss: 1 },
    seconds: accuracies.length,
    expectations: [],
    timeline,
    ...(roundHours
      ? {
          virtualClock: {
            fleet: "phones",
            secondsPerExample: 0.002,
            secondsPerExampleSource: "scenario" as const,
            startHour: 0,
            deadlineSeconds: 1800,
            simulatedSeconds: clock,
          },
        }
      : {}),
  };
}

let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "fedsim-simtime-"));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function runDir(name: string, content: unknown): Promise<string> {
  const dir = path.join(tmp, name);
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "summary.json"), JSON.stringify(content));
  return dir;
}

describe("time to target along simulated hours", () => {
  it("interpolates linearly in simulated time between the rounds around the crossing", () => {
    // 0.7 at 2 h, 0.9 at 6 h: 0.8 is halfway in accuracy, so 4 h.
    expect(
      xAtTarget(
        [
          [1, 0.5],
          [2, 0.7],
          [6, 0.9],
        ],
        0.8,
        0.1,
      ),
    ).toBeCloseTo(4, 12);
    expect(xAtTarget([[1, 0.5]], 0.8, 0.1)).toBeNull();
    expect(xAtTarget([[1, 0.5]], 0.05, 0.1)).toBe(0);
  });
});

describe("the x axis choice", () => {
  it("defaults to simulated hours when every run is on the virtual clock, else to rounds", () => {
    const sim = parseRunSummary(summary([0.5, 0.7], [1, 2]));
    const real = parseRunSummary(summary([0.5, 0.7]));
    expect(chooseXAxis([{ label: "a", summary: sim }]).choice).toBe("simulated-hours");
    expect(chooseXAxis([{ label: "a", summary: sim }]).of(sim.rounds[1])).toBeCloseTo(3, 12);
    expect(chooseXAxis([{ label: "b", summary: real }]).choice).toBe("round");
    expect(
      chooseXAxis([
        { label: "a", summary: sim },
        { label: "b", summary: real },
      ]).choice,
    ).toBe("round");
    expect(chooseXAxis([{ label: "a", summary: sim }], "round").choice).toBe("round");
  });

  it("refuses simulated hours for a run on the real clock, naming it", () => {
    const real = parseRunSummary(summary([0.5]));
    const err = (() => {
      try {
        chooseXAxis([{ label: "runs/real", summary: real }], "simulated-hours");
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(FedsimError);
    expect((err as FedsimError).code).toBe(ErrorCode.INVALID_CONFIG);
    expect((err as FedsimError).details[0]).toMatch(/^runs\/real: its rounds carry no simulated time/);
  });
});

describe("compare on the simulated clock", () => {
  it("reports simulated hours to target beside rounds to target", async () => {
    const quick = await runDir("quick", summary([0.5, 0.7, 0.9], [1, 1, 4]));
    const slow = await runDir("slow", summary([0.6, 0.9], [5, 5]));
    const comparison = compareSummaries(await loadRuns([quick, slow]), 0.8);
    const [q, s] = comparison.rows;
    // Fewer rounds is not less time: slow needs 1.67 rounds but 8.3 h, quick 2.5 rounds but 4 h.
    expect(q.roundsToTarget).toBeCloseTo(2.5, 12);
    expect(q.simulatedHoursToTarget).toBeCloseTo(4, 12);
    expect(s.roundsToTarget).toBeCloseTo(1 + 0.2 / 0.3, 12);
    expect(s.simulatedHoursToTarget).toBeCloseTo(5 + (5 * 0.2) / 0.3, 12);
    expect(q.simulatedHours).toBe(6);
    const text = formatCompareTable(comparison);
    expect(text).toContain("simulated to 80.0 %");
    expect(text).toMatch(/^quick\s.*\sin round 3 \(2\.5\)\s+4\.00 h\s+6\.00 h\s/m);
  });

  it("plots against simulated hours by default, and against rounds when asked", async () => {
    const a = await runDir("plot-a", summary([0.5, 0.9], [1, 2]));
    const b = await runDir("plot-b", summary([0.4, 0.8], [2, 2]));
    const byTime = path.join(tmp, "by-time.html");
    await compareRuns([a, b], { out: byTime, target: 0.8 });
    const timeHtml = await readFile(byTime, "utf8");
    expect(timeHtml).toContain(">Test accuracy over simulated time</text>");
    expect(timeHtml).toContain(">simulated hours</text>");
    const byRound = path.join(tmp, "by-round.html");
    await compareRuns([a, b], { out: byRound, target: 0.8, x: "round" });
    expect(await readFile(byRound, "utf8")).toContain(">Test accuracy per round</text>");
  });

  it("has no simulated column for runs on the real clock", async () => {
    const real = await runDir("real", summary([0.5, 0.9]));
    const comparison = compareSummaries(await loadRuns([real]), 0.8);
    expect(comparison.rows[0].simulatedHoursToTarget).toBeUndefined();
    expect(formatCompareTable(comparison)).not.toContain("simulated");
  });
});

describe("report.html on the simulated clock", () => {
  it("plots accuracy against simulated hours, draws the timeline in simulated time and says how it simulated", () => {
    const html = buildReportHtml(summary([0.5, 0.7, 0.9], [1, 1, 4]));
    expect(html).toContain(`>${CHART_TITLES.accuracyByTime}</text>`);
    expect(html).toContain(`>${CHART_TITLES.lossByTime}</text>`);
    expect(html).toContain(">simulated seconds since the run began</text>");
    expect(html).toContain("virtual: 6 h 00 min simulated");
    expect(html).toContain("set by the scenario");
    expect(html).toContain("simulated end (h)");
  });

  it("plots per round when asked, and per round for the real clock", () => {
    expect(buildReportHtml(summary([0.5, 0.9], [1, 1]), { x: "round" })).toContain(
      `>${CHART_TITLES.accuracy}</text>`,
    );
    const real = buildReportHtml(summary([0.5, 0.9]));
    expect(real).toContain(`>${CHART_TITLES.accuracy}</text>`);
    expect(real).not.toContain("simulated");
  });
});

describe("summary rows and timeline entries", () => {
  it("carry the simulated times of rounds and fits, and the final table shows the simulated clock", () => {
    const record = {
      round: 1,
      accuracy: 0.5,
      loss: 1,
      participants: 1,
      sampled: 1,
      failures: 0,
      failureDetails: [],
      failuresByKind: {},
      dropouts: 0,
      cancelled: 0,
      bytesSent: 0,
      bytesReceived: 0,
      seconds: 0.2,
      startedAt: 1000,
      simulatedStart: 3600,
      simulatedSeconds: 900,
      clients: [
        {
          clientId: "a",
          startSeconds: 0,
          seconds: 0.1,
          outcome: "ok" as const,
          simulatedSentAt: 3600,
          simulatedArrivedAt: 4500,
        },
      ],
    } satisfies RoundRecord;
    expect(summaryRound(record)).toMatchObject({ simulatedStart: 3600, simulatedSeconds: 900 });
    expect(buildTimeline([record])[0]).toMatchObject({ simulatedSentAt: 3600, simulatedArrivedAt: 4500 });
    expect(formatTable([summaryRound(record)], false)).toMatch(/simulated end[\s\S]*1 h 15 min/);
  });
});

describe("the commands' --x option", () => {
  it("`fedsim report --x round` plots per round; `fedsim compare --x simulated-hours` refuses real-clock runs", async () => {
    const sim = await runDir("cli-sim", summary([0.5, 0.9], [1, 1]));
    const real = await runDir("cli-real", summary([0.5, 0.9]));
    const quiet = [
      vi.spyOn(process.stdout, "write").mockImplementation(() => true),
      vi.spyOn(process.stderr, "write").mockImplementation(() => true),
    ];
    try {
      await reportCommand().exitOverride().parseAsync([sim, "--x", "round"], { from: "user" });
      expect(await readFile(path.join(sim, "report.html"), "utf8")).toContain(
        `>${CHART_TITLES.accuracy}</text>`,
      );
      const refused = await compareCommand()
        .exitOverride()
        .parseAsync([sim, real, "--x", "simulated-hours", "--out", path.join(tmp, "x.html")], {
          from: "user",
        })
        .catch((e: unknown) => e);
      expect((refused as FedsimError).details.join("\n")).toMatch(
        /cli-real: its rounds carry no simulated time/,
      );
      expect(handleError(refused)).toBe(2);
      const badAxis = await reportCommand()
        .exitOverride()
        .parseAsync([sim, "--x", "hours"], { from: "user" })
        .catch((e: unknown) => e);
      expect((badAxis as FedsimError).details[0]).toMatch(/^--x: /);
    } finally {
      for (const spy of quiet) spy.mockRestore();
    }
  });
});

describe("progress lines", () => {
  it("show the round's simulated duration and the simulated clock", () => {
    const lines: string[] = [];
    const progress = new RunProgress(2, false, (line) => lines.push(line));
    const record = {
      round: 1,
      accuracy: 0.5,
      loss: 1,
      participants: 1,
      sampled: 1,
      failures: 0,
      failureDetails: [],
      failuresByKind: {},
      dropouts: 0,
      cancelled: 0,
      bytesSent: 0,
      bytesReceived: 0,
      seconds: 0.2,
      startedAt: 0,
      clients: [],
    } satisfies RoundRecord;
    progress.roundDone({ ...record, simulatedStart: 3600, simulatedSeconds: 900 });
    progress.roundDone({ ...record, round: 2 });
    expect(lines[0]).toContain("simulated 15 min 00 s, clock at 1 h 15 min");
    expect(lines[1]).not.toContain("simulated");
  });
});
