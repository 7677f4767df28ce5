import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { compareCommand } from "../cli/commands/compare.js";
import { handleError } from "../cli/handle-error.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import {
  compareRuns,
  compareSummaries,
  formatCompareTable,
  loadRuns,
  runLabels,
} from "../scenarios/report/compare.js";
import { accuracyTargetOf, defaultTarget, roundsToTarget } from "../scenarios/report/rounds-to-target.js";

describe("roundsToTarget (McMahan et al. 2017: running max, linear interpolation)", () => {
  it("interpolates between the two rounds around the crossing", () => {
    // Round 2 at 0.7, round 3 at 0.9: 0.8 is halfway, so 2.5 rounds.
    expect(roundsToTarget([0.5, 0.7, 0.9], 0.8)).toBeCloseTo(2.5, 12);
    // 0.85 is a quarter of the way from 0.8 to 1.0 between rounds 1 and 2.
    expect(roundsToTarget([0.8, 1.0], 0.85)).toBeCloseTo(1.25, 12);
  });

  it("returns the round itself when it hits the target exactly", () => {
    expect(roundsToTarget([0.5, 0.8, 0.9], 0.8)).toBe(2);
  });

  it("keeps the first crossing when accuracy dips afterwards", () => {
    // Crosses 0.8 between round 1 (0.6) and round 2 (0.85): 1 + 0.2 / 0.25 = 1.8; the dip to 0.7 is ignored.
    expect(roundsToTarget([0.6, 0.85, 0.7, 0.75], 0.8)).toBeCloseTo(1.8, 12);
  });

  it("interpolates from the best so far, not from a dip just before the crossing", () => {
    // Running max: 0.5, 0.8, 0.8, 0.95. Crossing 0.9 between rounds 3 and 4: 3 + 0.1 / 0.15.
    expect(roundsToTarget([0.5, 0.8, 0.6, 0.95], 0.9)).toBeCloseTo(3 + 2 / 3, 12);
  });

  it("returns null when the target is never reached", () => {
    expect(roundsToTarget([0.5, 0.6, 0.55], 0.9)).toBeNull();
    expect(roundsToTarget([], 0.9)).toBeNull();
    expect(roundsToTarget([], 0.9, 0.1)).toBeNull();
  });

  it("reaches the target during round 1, interpolating from the initial accuracy", () => {
    // From 0.1 at round 0 to 0.9 at round 1: 0.5 is reached halfway.
    expect(roundsToTarget([0.9, 0.95], 0.5, 0.1)).toBeCloseTo(0.5, 12);
    // Without an initial value there is nothing to interpolate from: round 1.
    expect(roundsToTarget([0.9, 0.95], 0.5)).toBe(1);
    // An initial model already at the target needs no rounds.
    expect(roundsToTarget([0.9], 0.5, 0.6)).toBe(0);
  });

  it("does not count a diverged (NaN) round as progress", () => {
    expect(roundsToTarget([Number.NaN, 0.9], 0.5)).toBe(2);
    expect(roundsToTarget([0.4, Number.NaN, 0.6], 0.5)).toBeCloseTo(2.5, 12);
  });

  it("refuses a target that is not a number", () => {
    expect(() => roundsToTarget([0.5], Number.NaN)).toThrow(FedsimError);
  });
});

describe("the default target", () => {
  const run = (final: number, details: string[] = []) => ({
    final: { accuracy: final },
    expectations: details.map((detail) => ({ name: detail.split(" ")[0], detail })),
  });

  it("reads the bound of a finalAccuracy expectation", () => {
    expect(accuracyTargetOf({ name: "finalAccuracy", detail: "finalAccuracy 0.9285 ≥ 0.9" })).toBe(0.9);
    expect(accuracyTargetOf({ name: "epsilon", detail: "epsilon 9.8 ≤ 10" })).toBeUndefined();
  });

  it("is the lowest expectation target of the runs when they have one", () => {
    const choice = defaultTarget([
      run(0.93, ["finalAccuracy 0.93 ≥ 0.9"]),
      run(0.7, ["finalAccuracy 0.70 ≥ 0.85", "epsilon 2 ≤ 3"]),
      run(0.5),
    ]);
    expect(choice.target).toBe(0.85);
  });

  it("is otherwise 0.9 × the best final accuracy", () => {
    expect(defaultTarget([run(0.8), run(0.9), run(Number.NaN)]).target).toBeCloseTo(0.81, 12);
  });
});

describe("runLabels", () => {
  it("uses the shortest path suffix that tells the runs apart", () => {
    expect(runLabels(["runs/byz/fedavg", "runs/clean/fedavg", "runs/x/krum"])).toEqual([
      "byz/fedavg",
      "clean/fedavg",
      "krum",
    ]);
  });
});

/** A run of summary.json with the given accuracies (old format: failures a number). */
function summary(strategy: string, accuracies: number[], extra: Record<string, unknown> = {}) {
  return {
    scenario: "cmp",
    backend: "wasm",
    strategy,
    seed: 1,
    clients: 10,
    initial: { accuracy: 0.1, loss: 2.3 },
    rounds: accuracies.map((accuracy, i) => ({
      round: i + 1,
      accuracy,
      loss: 2 - accuracy,
      participants: 10,
      failures: 0,
      seconds: 1,
    })),
    final: { accuracy: accuracies[accuracies.length - 1], loss: 2 - accuracies[accuracies.length - 1] },
    seconds: accuracies.length,
    expectations: [],
    ...extra,
  };
}

let tmp: string;
let dirs: string[];
beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "fedsim-compare-"));
  const runs = {
    fast: summary("fedavg", [0.5, 0.7, 0.9]),
    dippy: summary("fedprox", [0.6, 0.85, 0.7, 0.75]),
    slow: summary("krum", [0.3, 0.4, 0.5]),
    private: summary("fedavg", [0.4, 0.82], {
      final: { accuracy: 0.82, loss: 1.18, epsilon: 3.5, delta: 1e-5 },
      rounds: [
        {
          round: 1,
          accuracy: 0.4,
          loss: 1.6,
          participants: 10,
          failures: { timeout: 1 },
          seconds: 1,
          epsilon: 2,
        },
        { round: 2, accuracy: 0.82, loss: 1.18, participants: 10, failures: {}, seconds: 1, epsilon: 3.5 },
      ],
    }),
  };
  dirs = [];
  for (const [name, content] of Object.entries(runs)) {
    const dir = path.join(tmp, "runs", name);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, "summary.json"), JSON.stringify(content));
    dirs.push(dir);
  }
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("compare", () => {
  it("tabulates rounds to target for each run", async () => {
    const comparison = compareSummaries(await loadRuns(dirs), 0.8);
    const byLabel = Object.fromEntries(comparison.rows.map((r) => [r.label, r]));
    expect(byLabel.fast.roundsToTarget).toBeCloseTo(2.5, 12);
    expect(byLabel.dippy.roundsToTarget).toBeCloseTo(1.8, 12);
    expect(byLabel.slow.roundsToTarget).toBeNull();
    expect(byLabel.private.roundsToTarget).toBeCloseTo(1 + 0.4 / 0.42, 12);
    expect(byLabel.dippy.bestAccuracy).toBe(0.85);
    expect(byLabel.private.finalEpsilon).toBe(3.5);

    const text = formatCompareTable(comparison);
    expect(text).toContain("target accuracy 0.8000 (given)");
    // A crossing between two rounds' evaluations reads as the round it happened in.
    expect(text).toMatch(
      /^fast\s+cmp\s+fedavg\s+3\s+90\.00 %\s+90\.00 %\s+in round 3 \(2\.5\)\s+—\s+3\.0 s$/m,
    );
    expect(text).toMatch(/^dippy\s.*\sin round 2 \(1\.8\)\s/m);
    expect(text).toMatch(/^slow\s.*\snot reached\s/m);
    // 1.95 rounds, shown to one decimal.
    expect(text).toMatch(/^private\s.*\sin round 2 \(2\.0\)\s+3\.500\s/m);
  });

  it("defaults the target to 0.9 × the best final accuracy without expectations", async () => {
    const comparison = compareSummaries(await loadRuns(dirs));
    expect(comparison.target).toBeCloseTo(0.81, 12);
    expect(comparison.targetSource).toBe("0.9 × the best final accuracy");
  });

  it("refuses a target outside (0, 1]", async () => {
    expect(() => compareSummaries([], 1.5)).toThrow(/target must be an accuracy in \(0, 1\]/);
  });

  it("writes one page overlaying the runs: accuracy, loss and ε charts and the table", async () => {
    const out = path.join(tmp, "pages", "cmp.html");
    const result = await compareRuns(dirs, { target: 0.8, out });
    expect(result.html).toBe(out);
    const html = await readFile(out, "utf8");
    expect(html.match(/<svg /g)).toHaveLength(3);
    for (const title of ["Test accuracy per round", "Test loss per round", "Privacy budget ε per round"]) {
      expect(html).toContain(`>${title}</text>`);
    }
    for (const label of ["fast", "dippy", "slow", "private"]) expect(html).toContain(`>${label}</text>`);
    expect(html).toContain(">target 80.0 %</text>");
    expect(html).toContain('<td class="num">not reached</td>');
    expect(html).toContain('<td class="num">in round 3 (2.5)</td>');
  });

  it("leaves out the ε chart when no run has DP", async () => {
    const out = path.join(tmp, "no-dp.html");
    await compareRuns(dirs.slice(0, 3), { out });
    expect(await readFile(out, "utf8")).not.toContain("Privacy budget ε");
  });

  it("refuses a missing run directory and a bad summary", async () => {
    const missing = await compareRuns([dirs[0], path.join(tmp, "nope")]).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(FedsimError);
    expect((missing as FedsimError).code).toBe(ErrorCode.INVALID_CONFIG);
    expect((missing as FedsimError).message).toContain(path.join(tmp, "nope"));

    const bad = path.join(tmp, "runs", "bad");
    await mkdir(bad, { recursive: true });
    await writeFile(path.join(bad, "summary.json"), JSON.stringify({ ...summary("x", [0.5]), initial: "?" }));
    const err = await loadRuns([bad]).catch((e: unknown) => e);
    expect((err as FedsimError).message).toContain(path.join(bad, "summary.json"));
    expect((err as FedsimError).details.join("\n")).toMatch(/summary\.json: initial:/);
  });
});

describe("`fedsim compare`", () => {
  function capture() {
    const out: string[] = [];
    const write = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
      out.push(String(chunk));
      return true;
    });
    const quiet = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    return {
      text: () => out.join(""),
      restore: () => {
        write.mockRestore();
        quiet.mockRestore();
      },
    };
  }

  it("prints the table, or JSON with --json, and writes the page given by --out", async () => {
    const out = path.join(tmp, "cli.html");
    const io = capture();
    try {
      await compareCommand()
        .exitOverride()
        .parseAsync([...dirs, "--target", "0.8", "--out", out], { from: "user" });
      expect(io.text()).toMatch(/^fast\s.*\sin round 3 \(2\.5\)\s/m);
      expect(io.text()).toContain(`wrote ${out}`);
    } finally {
      io.restore();
    }
    expect(await readFile(out, "utf8")).toContain("<svg ");

    const json = capture();
    try {
      await compareCommand()
        .exitOverride()
        .parseAsync([...dirs, "--target", "0.8", "--out", out, "--json"], { from: "user" });
    } finally {
      json.restore();
    }
    const parsed = JSON.parse(json.text()) as {
      target: number;
      rows: { label: string; roundsToTarget: number | null }[];
    };
    expect(parsed.target).toBe(0.8);
    expect(parsed.rows.find((r) => r.label === "slow")?.roundsToTarget).toBeNull();
  });

  it("exits 2 on a bad --target or a missing directory", async () => {
    const io = capture();
    try {
      const badTarget = await compareCommand()
        .exitOverride()
        .parseAsync([dirs[0], "--target", "2"], { from: "user" })
        .catch((e: unknown) => e);
      expect((badTarget as FedsimError).details).toEqual(["--target: must be an accuracy in (0, 1]"]);
      expect(handleError(badTarget)).toBe(2);
      const missing = await compareCommand()
        .exitOverride()
        .parseAsync([path.join(tmp, "gone"), "--out", path.join(tmp, "x.html")], { from: "user" })
        .catch((e: unknown) => e);
      expect(handleError(missing)).toBe(2);
    } finally {
      io.restore();
    }
  });
});
