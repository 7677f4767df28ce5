// examples/run.ts: running the scenario from a program, with forked client pools.
import { fileURLToPath } from "node:url";
import { runScenario } from "fedsim";
import definition from "./scenario.js";

// Each pool process imports this module first, so it sees the client and dataset definitions.
const scenarioModule = fileURLToPath(new URL("./scenario.js", import.meta.url));

const summary = await runScenario(definition.scenario, {
  hooks: definition.hooks,
  processes: 2,
  modules: [scenarioModule],
  // Every coordinator and client line passes here; keep the hook's "round N: accuracy …".
  log: (line) => {
    if (/^round \d+: accuracy/.test(line)) console.error(line);
  },
});
const last = summary.rounds[summary.rounds.length - 1];
console.log(
  JSON.stringify({
    strategy: summary.strategy,
    initialAccuracy: summary.initial.accuracy,
    finalAccuracy: summary.final.accuracy,
    fitMetrics: last.fitMetrics,
    strategyMetrics: last.strategyMetrics,
    federatedMetrics: last.federatedMetrics,
  }),
);
