import path from "node:path";
import { runScenario } from "../../scenarios/runner.js";
import { loadScenarioFile, parseScenario, validateScenario } from "../../scenarios/schema.js";
import { scenarioForStrategy } from "../../scenarios/sweep-overrides.js";
import { repoRoot } from "../paths.js";
import type { Table } from "../report/report-format.js";

/**
 * Simulated seconds per wall second of the asynchronous scenario: scenarios/async-cross-device.yaml
 * as its FedBuff run (the sweep's override applied), shortened to fewer phones, fewer versions and
 * one simulated hour, run by runScenario as `fedsim run` runs it (pool processes, Socket.IO on
 * loopback, the virtual clock). The wall time is the whole run, start-up included.
 */
export interface AsyncSimulationSection {
  scenario: string;
  strategy: string;
  clients: number;
  concurrency: number;
  bufferSize: number;
  /** Versions published and updates aggregated. */
  versions: number;
  updates: number;
  simulatedSeconds: number;
  wallSeconds: number;
  simulatedPerWallSecond: number;
  updatesPerWallSecond: number;
  backend: string;
  stopReason: string | null;
}

const SCENARIO = "async-cross-device";
const STRATEGY = "fedbuff";

export async function runAsyncSimulation(options: {
  quick: boolean;
  log: (line: string) => void;
}): Promise<AsyncSimulationSection> {
  const base = await loadScenarioFile(path.join(repoRoot(), "scenarios", `${SCENARIO}.yaml`));
  const own = scenarioForStrategy(base, STRATEGY, validateScenario);
  const clients = options.quick ? 200 : 1000;
  const scenario = parseScenario(
    {
      ...own,
      clients,
      rounds: options.quick ? 20 : 100,
      strategy: { ...own.strategy, name: STRATEGY },
      virtual: { ...own.virtual, simulatedHours: 1 },
      sweep: undefined,
      expect: undefined,
    },
    `${SCENARIO} (bench: ${clients} phones)`,
  );
  options.log(`asyncSimulation: ${SCENARIO} as ${STRATEGY}, ${clients} phones, ${scenario.rounds} versions`);
  const started = performance.now();
  const summary = await runScenario(scenario, { log: () => {} });
  const wallSeconds = (performance.now() - started) / 1000;
  const simulatedSeconds = summary.virtualClock?.simulatedSeconds ?? 0;
  const updates = summary.updates?.length ?? 0;
  return {
    scenario: SCENARIO,
    strategy: STRATEGY,
    clients,
    concurrency: scenario.strategy.concurrency ?? 0,
    bufferSize: scenario.strategy.bufferSize ?? 0,
    versions: summary.rounds.length,
    updates,
    simulatedSeconds: Number(simulatedSeconds.toFixed(1)),
    wallSeconds: Number(wallSeconds.toFixed(1)),
    simulatedPerWallSecond: Number((simulatedSeconds / wallSeconds).toFixed(2)),
    updatesPerWallSecond: Number((updates / wallSeconds).toFixed(1)),
    backend: summary.backend,
    stopReason: summary.stopReason ?? null,
  };
}

export function asyncSimulationTable(s: AsyncSimulationSection): Table {
  return {
    title: `Asynchronous simulation (${s.scenario}, ${s.strategy}, ${s.clients.toLocaleString("en-US")} phones on the virtual clock)`,
    headers: ["what", "value"],
    rows: [
      ["simulated seconds per wall second", s.simulatedPerWallSecond],
      ["updates per wall second", s.updatesPerWallSecond],
      ["simulated seconds", s.simulatedSeconds],
      ["wall seconds (whole run)", s.wallSeconds],
      ["versions published / updates aggregated", `${s.versions} / ${s.updates}`],
    ],
    notes: [
      `scenarios/${s.scenario}.yaml with its ${s.strategy} override (M = ${s.concurrency}, K = ${s.bufferSize}), ` +
        `shortened to ${s.clients} phones, ${s.versions} versions and a one-hour simulated budget; runScenario ` +
        `as \`fedsim run\` runs it (pool processes, Socket.IO on loopback, ${s.backend} backend). ` +
        `The wall time is the whole run, pool start-up and connection included; the run stopped ` +
        `${s.stopReason === null ? "after its last version" : `because: ${s.stopReason}`}.`,
      "A figure, not a target: it depends on the device fleet's speed (phones with a few examples each finish " +
        "a fit in simulated seconds) as much as on fedsim.",
    ],
  };
}
