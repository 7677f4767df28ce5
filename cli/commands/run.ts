import { Command } from "commander";
import { z } from "zod";
import { MIN_TOKEN_CHARS } from "../../common/crypto/auth.js";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { isStrategyName, STRATEGY_NAMES } from "../../common/strategy/names.js";
import { didYouMean } from "../../common/suggest.js";
import type { ScenarioHooks } from "../../scenarios/define.js";
import { loadScenarioSource } from "../../scenarios/load.js";
import type { RunSummary } from "../../scenarios/report.js";
import { runScenario } from "../../scenarios/runner.js";
import { BACKEND_NAMES, loadScenarioFile, type Scenario, validateScenario } from "../../scenarios/schema.js";
import { scenarioAttackers } from "../../scenarios/sim/pool.js";
import { formatSweepTable, requestedStrategies, runSweep } from "../../scenarios/sweep.js";
import { readCheckpoint } from "../../server/checkpoint.js";
import { MAX_DASHBOARD_TOKEN_CHARS } from "../../server/observe/access.js";
import { SECRET_SAMPLING_NOTICE } from "../../server/round-loop.js";
import { num, parseOptions, stderrLog } from "../options.js";

const runOptionsSchema = z.object({
  out: z.string().optional(),
  strategy: z.string().optional(),
  backend: z.enum(BACKEND_NAMES).optional(),
  processes: z.number().int().min(0).max(64).optional(),
  rounds: z.number().int().min(1).optional(),
  verbose: z.boolean().optional(),
  resume: z.string().optional(),
  dashboard: z.boolean().optional(),
  dashboardToken: z.string().min(MIN_TOKEN_CHARS).max(MAX_DASHBOARD_TOKEN_CHARS).optional(),
});

type RunCliOptions = z.infer<typeof runOptionsSchema>;

export function runCommand(): Command {
  return new Command("run")
    .description("run a scenario: a coordinator and its clients on this machine, over real Socket.IO")
    .argument(
      "[scenario]",
      "scenario: YAML, JSON, or a defineScenario script (.ts/.js); optional with --resume",
    )
    .option("--out <dir>", "write summary.json, metrics.jsonl and the final model here")
    .option("--strategy <names>", "override the scenario's strategy; a,b,c runs a sweep over several")
    .option("--backend <name>", "auto | gpu | node | webgpu | native | wasm | cpu")
    .option("--processes <n>", "client pool processes (0 = in this process)", num)
    .option("--rounds <n>", "override the number of rounds", num)
    .option("--verbose", "print coordinator and client logs")
    .option("--resume <dir>", "continue an interrupted run from the checkpoint in DIR")
    .option("--dashboard", "serve a live dashboard on the coordinator's port while the run lasts")
    .option(
      "--dashboard-token <token>",
      `open the dashboard and /metrics to peers that present this token (at least ${MIN_TOKEN_CHARS} characters)`,
    )
    .action(async (file: string | undefined, raw: unknown) => {
      const opts = parseOptions(runOptionsSchema, raw);
      if (opts.resume && opts.out && opts.resume !== opts.out) {
        throw new FedsimError(
          ErrorCode.INVALID_CONFIG,
          "--resume DIR already names the output directory; drop --out",
        );
      }
      if (opts.resume) opts.out = opts.resume;
      const fromCheckpoint = opts.resume && !file ? await checkpointedRun(opts.resume) : undefined;
      if (fromCheckpoint?.strategy && !opts.strategy) opts.strategy = fromCheckpoint.strategy;
      const source = file ? await loadScenarioSource(file) : undefined;
      const loaded =
        fromCheckpoint?.scenario ?? source?.scenario ?? (await loadScenarioFile(requiredFile(file)));
      const hooks = source?.hooks ?? {};
      const scenario = opts.rounds !== undefined ? { ...loaded, rounds: opts.rounds } : loaded;
      process.stdout.write(
        `fedsim run: ${scenario.name}: ${scenario.clients} clients, ${scenario.rounds} rounds, model ${scenario.model}, dataset ${scenario.dataset.name}\n`,
      );
      for (const line of roleLines(scenario)) process.stdout.write(`${line}\n`);
      const strategies = requestedStrategies(scenario, opts.strategy);
      if (opts.strategy !== undefined) assertStrategyNames(strategies);
      if (strategies.length > 1 && opts.resume) {
        throw new FedsimError(
          ErrorCode.INVALID_CONFIG,
          "--resume continues one run; resume each strategy's directory of a sweep",
        );
      }
      // A script registers its definitions on import; pool processes import it again to see them.
      const modules = file && /\.(m?ts|m?js)$/i.test(file) ? [file] : [];
      if (strategies.length > 1) await sweep(scenario, strategies, opts, hooks, modules);
      else await single(scenario, strategies[0], opts, hooks, modules);
    });
}

function runOptions(opts: RunCliOptions, hooks: ScenarioHooks, modules: string[]) {
  const log = opts.verbose ? stderrLog() : () => {};
  return {
    hooks,
    modules,
    ...(opts.backend ? { backend: opts.backend } : {}),
    ...(opts.processes !== undefined ? { processes: opts.processes } : {}),
    ...(opts.dashboard || opts.dashboardToken !== undefined
      ? { dashboard: opts.dashboardToken !== undefined ? { token: opts.dashboardToken } : {} }
      : {}),
    interactive: true,
    log: (line: string) => {
      if (line.startsWith("backend:")) process.stdout.write(`${line}\n`);
      else log(line);
    },
  };
}

async function single(
  scenario: Scenario,
  strategy: string | undefined,
  opts: RunCliOptions,
  hooks: ScenarioHooks,
  modules: string[],
): Promise<void> {
  const summary = await runScenario(scenario, {
    ...runOptions(opts, hooks, modules),
    ...(opts.out ? { outDir: opts.out } : {}),
    ...(strategy ? { strategy } : {}),
    ...(opts.resume ? { resume: true } : {}),
  });
  const eps =
    summary.final.epsilon !== undefined
      ? `, ε=${summary.final.epsilon.toFixed(3)} (δ=${summary.final.delta})`
      : "";
  const path = summary.training?.path === "fast-path" ? " (fast path)" : "";
  process.stdout.write(
    `\nfinal accuracy ${summary.final.accuracy.toFixed(4)}, loss ${summary.final.loss.toFixed(4)}${eps} in ${summary.seconds.toFixed(1)} s on ${summary.backend}${path}\n`,
  );
  if (summary.training?.reason !== undefined && summary.backend === "native") {
    process.stdout.write(`clients trained through tfjs autodiff: ${summary.training.reason}\n`);
  }
  if (summary.stopReason) process.stdout.write(`stopped early: ${summary.stopReason}\n`);
  if (opts.out) process.stdout.write(`wrote ${opts.out}/summary.json and ${opts.out}/report.html\n`);
  reportExpectations(summary.expectations);
}

async function sweep(
  scenario: Scenario,
  strategies: string[],
  opts: RunCliOptions,
  hooks: ScenarioHooks,
  modules: string[],
): Promise<void> {
  const report = await runSweep(scenario, strategies, {
    ...runOptions(opts, hooks, modules),
    ...(opts.out ? { outDir: opts.out } : {}),
    onStart: (name, i, total) => process.stdout.write(`\n=== sweep ${i + 1}/${total}: ${name} ===\n`),
  });
  process.stdout.write(`\nsweep of ${scenario.name} (seed ${scenario.seed}):\n${formatSweepTable(report)}\n`);
  if (opts.out)
    process.stdout.write(`wrote ${opts.out}/sweep.json and ${opts.out}/<strategy>/summary.json\n`);
  reportExpectations(
    report.results.flatMap((r) =>
      r.expectations.map((e) => ({ ...e, detail: `${r.strategy}: ${e.detail}` })),
    ),
  );
}

function reportExpectations(expectations: RunSummary["expectations"]): void {
  for (const e of expectations) process.stdout.write(`expect ${e.passed ? "ok  " : "FAIL"} ${e.detail}\n`);
  const failed = expectations.filter((e) => !e.passed);
  if (failed.length > 0) {
    throw new FedsimError(
      ErrorCode.EXPECTATION_FAILED,
      `${failed.length} expectation(s) failed`,
      failed.map((f) => f.detail),
    );
  }
}

/** Says up front which clients attack or straggle, so a table of results can be read. */
function roleLines(scenario: Scenario): string[] {
  const lines: string[] = [];
  const attackers = scenario.attackers;
  if (attackers) {
    const params = [
      attackers.scale !== undefined ? `κ=${attackers.scale}` : "",
      attackers.stddev !== undefined ? `σ=${attackers.stddev}` : "",
      attackers.value !== undefined ? `c=${attackers.value}` : "",
    ].filter(Boolean);
    const indices = [...scenarioAttackers(scenario)];
    lines.push(
      `attackers: ${indices.length} (${attackers.attack}${params.length > 0 ? ` ${params.join(" ")}` : ""}): clients ${indices.join(", ")}`,
    );
  }
  if (scenario.privacy?.dp) lines.push(`sampling: ${SECRET_SAMPLING_NOTICE}`);
  if (scenario.stragglers) {
    lines.push(
      `stragglers: each sampled client trains 1..E−1 epochs with probability ${scenario.stragglers.fraction}`,
    );
  }
  return lines;
}

/** A typo in --strategy is refused before any data or backend loads. */
function assertStrategyNames(names: readonly string[]): void {
  const unknown = names.filter((name) => !isStrategyName(name));
  if (unknown.length === 0) return;
  throw new FedsimError(
    ErrorCode.INVALID_CONFIG,
    "invalid options",
    unknown.map(
      (name) =>
        `--strategy: unknown strategy "${name}"${didYouMean(name, STRATEGY_NAMES)}; choose one of ${STRATEGY_NAMES.join(", ")}`,
    ),
  );
}

function requiredFile(file: string | undefined): string {
  if (!file) throw new FedsimError(ErrorCode.INVALID_CONFIG, "give a scenario file, or --resume DIR");
  return file;
}

/** The scenario (and strategy override) a checkpointed run was started with. */
async function checkpointedRun(dir: string): Promise<{ scenario: Scenario; strategy?: string }> {
  const checkpoint = await readCheckpoint(dir);
  const context = checkpoint.header.context as { scenario?: unknown; strategy?: unknown } | null;
  const scenario = validateScenario(context?.scenario, `${dir}/checkpoint`);
  return { scenario, ...(typeof context?.strategy === "string" ? { strategy: context.strategy } : {}) };
}
