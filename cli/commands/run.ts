import { Command } from "commander";
import { z } from "zod";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { runScenario } from "../../scenarios/runner.js";
import { loadScenarioFile } from "../../scenarios/schema.js";
import { num, parseOptions, stdoutLog } from "../options.js";

const runOptionsSchema = z.object({
  out: z.string().optional(),
  strategy: z.string().optional(),
  backend: z.enum(["auto", "gpu", "node", "wasm", "cpu"]).optional(),
  processes: z.number().int().min(0).max(64).optional(),
  rounds: z.number().int().min(0).optional(),
  verbose: z.boolean().optional(),
});

export function runCommand(): Command {
  return new Command("run")
    .description("run a scenario: a coordinator and its clients on this machine, over real Socket.IO")
    .argument("<scenario>", "scenario file (YAML or JSON)")
    .option("--out <dir>", "write summary.json, metrics.jsonl and the final model here")
    .option("--strategy <name>", "override the scenario's strategy")
    .option("--backend <name>", "auto | gpu | node | wasm | cpu")
    .option("--processes <n>", "client pool processes (0 = in this process)", num)
    .option("--rounds <n>", "override the number of rounds", num)
    .option("--verbose", "print coordinator and client logs")
    .action(async (file: string, raw: unknown) => {
      const opts = parseOptions(runOptionsSchema, raw);
      const loaded = await loadScenarioFile(file);
      const scenario = opts.rounds !== undefined ? { ...loaded, rounds: opts.rounds } : loaded;
      const log = opts.verbose ? stdoutLog() : () => {};
      process.stdout.write(
        `fedsim run: ${scenario.name}: ${scenario.clients} clients, ${scenario.rounds} rounds, model ${scenario.model}, dataset ${scenario.dataset.name}\n`,
      );
      const summary = await runScenario(scenario, {
        ...(opts.out ? { outDir: opts.out } : {}),
        ...(opts.strategy ? { strategy: opts.strategy } : {}),
        ...(opts.backend ? { backend: opts.backend } : {}),
        ...(opts.processes !== undefined ? { processes: opts.processes } : {}),
        interactive: true,
        log: (line) => {
          if (line.startsWith("backend:")) process.stdout.write(`${line}\n`);
          else log(line);
        },
      });
      const eps =
        summary.final.epsilon !== undefined
          ? `, ε=${summary.final.epsilon.toFixed(3)} (δ=${summary.final.delta})`
          : "";
      process.stdout.write(
        `\nfinal accuracy ${summary.final.accuracy.toFixed(4)}, loss ${summary.final.loss.toFixed(4)}${eps} in ${summary.seconds.toFixed(1)} s on ${summary.backend}\n`,
      );
      if (summary.stopReason) process.stdout.write(`stopped early: ${summary.stopReason}\n`);
      if (opts.out) process.stdout.write(`wrote ${opts.out}/summary.json\n`);
      const failed = summary.expectations.filter((e) => !e.passed);
      for (const e of summary.expectations)
        process.stdout.write(`expect ${e.passed ? "ok  " : "FAIL"} ${e.detail}\n`);
      if (failed.length > 0) {
        throw new FedsimError(
          ErrorCode.INVALID_SCENARIO,
          `${failed.length} expectation(s) failed`,
          failed.map((f) => f.detail),
        );
      }
    });
}
