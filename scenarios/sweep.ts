import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { failureCount, type RunSummary } from "./report.js";
import { type RunOptions, runScenario } from "./runner.js";
import { type Scenario, validateScenario } from "./schema.js";
import { createStrategy } from "./strategy-factory.js";
import { scenarioForStrategy } from "./sweep-overrides.js";

export interface SweepResult {
  strategy: string;
  finalAccuracy: number;
  /** Best test accuracy over the initial model and every round. */
  bestAccuracy: number;
  finalLoss: number;
  rounds: { round: number; accuracy: number; loss: number; participants: number; failures: number }[];
  /** Expectations from sweep.expect[strategy] (or the scenario's expect), as checked. */
  expectations: RunSummary["expectations"];
}

export interface SweepReport {
  scenario: string;
  seed: number;
  results: SweepResult[];
}

export interface SweepOptions extends Omit<RunOptions, "strategy"> {
  /** Called before each strategy's run, e.g. to print a header. */
  onStart?: (strategy: string, index: number, total: number) => void;
}

/**
 * The strategies to run: the comma-separated CLI override when given, else the scenario's sweep
 * list, else none (the scenario's own strategy). Two or more names make a sweep.
 */
export function requestedStrategies(scenario: Scenario, override?: string): string[] {
  return override !== undefined ? splitNames(override) : (scenario.sweep?.strategies ?? []);
}

/**
 * Runs the scenario once per strategy, with the same seed, data, partition, attackers and
 * stragglers, so that only the aggregation differs. With `outDir`, writes each run's files to
 * `outDir/<strategy>/` and the comparison to `outDir/sweep.json`. Every name is checked before
 * the first run starts, so a typo does not surface an hour into the sweep.
 */
export async function runSweep(
  scenario: Scenario,
  strategies: readonly string[],
  options: SweepOptions = {},
): Promise<SweepReport> {
  if (strategies.length === 0) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, "sweep: strategies must not be empty");
  }
  const repeated = strategies.filter((name, i) => strategies.indexOf(name) !== i);
  if (repeated.length > 0) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `sweep: ${repeated.join(", ")} listed twice`);
  }
  const perStrategy = new Map<string, Scenario>();
  for (const name of strategies) {
    if (!/^[A-Za-z0-9_-]+$/.test(name)) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `sweep: "${name}" is not a strategy name`);
    }
    const own = scenarioForStrategy(scenario, name, validateScenario);
    createStrategy(own, name);
    perStrategy.set(name, own);
  }
  const { onStart, ...runOptions } = options;
  const results: SweepResult[] = [];
  for (const [i, name] of strategies.entries()) {
    onStart?.(name, i, strategies.length);
    const own = perStrategy.get(name) ?? scenario;
    const expect = scenario.sweep?.expect?.[name] ?? scenario.expect;
    const summary = await runScenario(
      { ...own, ...(expect ? { expect } : {}) },
      {
        ...runOptions,
        strategy: name,
        ...(options.outDir ? { outDir: path.join(options.outDir, name) } : {}),
      },
    );
    results.push(sweepResult(name, summary));
  }
  const report: SweepReport = { scenario: scenario.name, seed: scenario.seed, results };
  if (options.outDir) {
    await mkdir(options.outDir, { recursive: true });
    await writeFile(path.join(options.outDir, "sweep.json"), `${JSON.stringify(report, null, 2)}\n`);
  }
  return report;
}

export function sweepResult(strategy: string, summary: RunSummary): SweepResult {
  const accuracies = [summary.initial.accuracy, ...summary.rounds.map((r) => r.accuracy)];
  return {
    strategy,
    finalAccuracy: summary.final.accuracy,
    bestAccuracy: Math.max(...accuracies.filter(Number.isFinite)),
    finalLoss: summary.final.loss,
    rounds: summary.rounds.map((r) => ({
      round: r.round,
      accuracy: r.accuracy,
      loss: r.loss,
      participants: r.participants,
      failures: failureCount(r),
    })),
    expectations: summary.expectations,
  };
}

/** The comparison table printed after a sweep. */
export function formatSweepTable(report: SweepReport): string {
  const header = ["strategy", "final accuracy", "best accuracy", "final loss"];
  const rows = report.results.map((r) => [
    r.strategy,
    r.finalAccuracy.toFixed(4),
    r.bestAccuracy.toFixed(4),
    r.finalLoss.toFixed(4),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

function splitNames(text: string): string[] {
  return text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
