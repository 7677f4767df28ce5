import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { compareSummaries, loadRuns } from "../scenarios/report/compare.js";
import type { RunSummary } from "../scenarios/report.js";
import { describeEnvironment } from "./environment.js";
import { repoRoot } from "./paths.js";

/**
 * Runs scenario files exactly as a user would (`fedsim run FILE --out DIR`, the compiled CLI)
 * and records what each reached in bench/results/scenarios.json, with when and on what machine.
 * The README's scenario table quotes this file and nothing else, so its figures can be checked
 * and re-made with one command: `npm run bench:scenarios [-- FILE...]`.
 */

interface ScenarioResult {
  scenario: string;
  strategy: string;
  finalAccuracy: number;
  bestAccuracy: number;
  rounds: number;
  epsilon?: number;
  /** Wall seconds of the whole command, from launch to exit (data loading and pools included). */
  wallSeconds: number;
  /** Virtual clock only: simulated seconds the run covered, and simulated seconds per wall second. */
  simulatedSeconds?: number;
  simulatedPerWallSecond?: number;
  /**
   * The accuracy target, chosen as `fedsim compare` chooses it over the scenario's runs, and
   * (virtual clock) the simulated hours at which the best-so-far curve reaches it, interpolated
   * linearly (scenarios/report/rounds-to-target.ts); null when the run never reached it.
   */
  target?: { accuracy: number; source: string };
  roundsToTarget?: number | null;
  simulatedHoursToTarget?: number | null;
  measuredAt: string;
  cpuModel: string;
  cores: number;
  loadAverage: { start: number; end: number };
}

interface ResultsFile {
  note: string;
  results: ScenarioResult[];
}

const DEFAULT_SCENARIOS = ["scenarios/quickstart.yaml"];

async function runCli(root: string, args: string[]): Promise<number> {
  const child = spawn(process.execPath, [path.join(root, "dist", "cli", "index.js"), ...args], {
    cwd: root,
    stdio: ["ignore", "inherit", "inherit"],
  });
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (code) => resolve(code ?? 1));
  });
}

function resultOf(
  scenario: string,
  summary: RunSummary,
  wallSeconds: number,
  load: { start: number; end: number },
): ScenarioResult {
  const accuracies = [summary.initial.accuracy, ...summary.rounds.map((r) => r.accuracy)];
  const env = describeEnvironment();
  const simulated = summary.virtualClock?.simulatedSeconds;
  return {
    scenario,
    strategy: summary.strategy,
    finalAccuracy: summary.final.accuracy,
    bestAccuracy: Math.max(...accuracies.filter(Number.isFinite)),
    rounds: summary.rounds.length,
    ...(summary.final.epsilon !== undefined ? { epsilon: summary.final.epsilon } : {}),
    wallSeconds: Number(wallSeconds.toFixed(1)),
    ...(simulated !== undefined
      ? {
          simulatedSeconds: Math.round(simulated),
          simulatedPerWallSecond: Number((simulated / wallSeconds).toFixed(1)),
        }
      : {}),
    measuredAt: new Date().toISOString(),
    cpuModel: env.cpuModel,
    cores: env.cores,
    loadAverage: load,
  };
}

async function readSummary(dir: string): Promise<RunSummary> {
  return JSON.parse(await readFile(path.join(dir, "summary.json"), "utf8")) as RunSummary;
}

/** One scenario: a single run, or a sweep (one summary per strategy under the out dir). */
async function measure(root: string, scenario: string): Promise<ScenarioResult[]> {
  const name = path.basename(scenario).replace(/\.[^.]+$/, "");
  const out = path.join(root, "runs", "results", name);
  await rm(out, { recursive: true, force: true });
  const loadStart = Number((await import("node:os")).loadavg()[0].toFixed(2));
  const started = performance.now();
  const code = await runCli(root, ["run", scenario, "--out", out]);
  const wall = (performance.now() - started) / 1000;
  const loadEnd = Number((await import("node:os")).loadavg()[0].toFixed(2));
  // Exit code 2 means an expectation was missed: the figures are still what the run reached.
  if (code !== 0 && code !== 2) throw new Error(`fedsim run ${scenario} exited with ${code}`);
  const load = { start: loadStart, end: loadEnd };
  const sweepFile = path.join(out, "sweep.json");
  if (!existsSync(sweepFile)) {
    return withTargets([resultOf(scenario, await readSummary(out), wall, load)], [out]);
  }
  const sweep = JSON.parse(await readFile(sweepFile, "utf8")) as { results: { strategy: string }[] };
  // A sweep's command covers all its strategies: each entry takes its own run's seconds instead.
  const results: ScenarioResult[] = [];
  const dirs: string[] = [];
  for (const { strategy } of sweep.results) {
    const dir = path.join(out, strategy);
    const summary = await readSummary(dir);
    results.push(resultOf(scenario, summary, summary.seconds ?? wall, load));
    dirs.push(dir);
  }
  return withTargets(results, dirs);
}

/**
 * Adds what `fedsim compare` reports for the same runs: one target for all of a scenario's runs
 * (its lowest finalAccuracy expectation, else 0.9 × the best final accuracy), the rounds to it
 * and, on the virtual clock, the simulated hours to it.
 */
async function withTargets(results: ScenarioResult[], dirs: string[]): Promise<ScenarioResult[]> {
  const comparison = compareSummaries(await loadRuns(dirs));
  return results.map((r, i) => {
    const row = comparison.rows[i];
    return {
      ...r,
      target: { accuracy: comparison.target, source: comparison.targetSource },
      roundsToTarget: roundOrNull(row.roundsToTarget, 2),
      ...(row.simulatedHoursToTarget !== undefined
        ? { simulatedHoursToTarget: roundOrNull(row.simulatedHoursToTarget, 3) }
        : {}),
    };
  });
}

function roundOrNull(value: number | null, digits: number): number | null {
  return value === null ? null : Number(value.toFixed(digits));
}

async function main(): Promise<void> {
  const root = repoRoot();
  const scenarios = process.argv.slice(2).length > 0 ? process.argv.slice(2) : DEFAULT_SCENARIOS;
  const file = path.join(root, "bench", "results", "scenarios.json");
  const previous: ResultsFile = existsSync(file)
    ? (JSON.parse(await readFile(file, "utf8")) as ResultsFile)
    : { note: "", results: [] };
  let results = previous.results;
  for (const scenario of scenarios) {
    const measured = await measure(root, scenario);
    const keys = new Set(measured.map((r) => `${r.scenario} ${r.strategy}`));
    results = [...results.filter((r) => !keys.has(`${r.scenario} ${r.strategy}`)), ...measured];
    const next: ResultsFile = {
      note: "Written by `npm run bench:scenarios [-- FILE...]`: each entry is one `fedsim run FILE`; the README's scenario figures come from here.",
      results: results.sort(
        (a, b) => a.scenario.localeCompare(b.scenario) || a.strategy.localeCompare(b.strategy),
      ),
    };
    await writeFile(file, `${JSON.stringify(next, null, 2)}\n`);
    for (const r of measured) {
      const toTarget =
        r.simulatedHoursToTarget === undefined
          ? ""
          : `, ${r.simulatedHoursToTarget === null ? "never reached" : `${r.simulatedHoursToTarget} simulated h to`} ${r.target?.accuracy}`;
      process.stdout.write(
        `${r.scenario} (${r.strategy}): accuracy ${r.finalAccuracy.toFixed(4)} after ${r.rounds} rounds, ${r.wallSeconds} s wall${toTarget}\n`,
      );
    }
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
