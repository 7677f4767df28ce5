/**
 * fedsim's package entry point (`import { defineScenario } from "fedsim"`): what scenario scripts
 * and programs that embed fedsim use. The CLI is `fedsim` (dist/cli/index.js).
 */
export { ClientNode, type ClientNodeOptions } from "../client/node.js";
export { type CoordinatorOptions, startCoordinator } from "../server/coordinator.js";
export type { RoundRecord } from "../server/round-record.js";
export { defineScenario, type RoundContext, type ScenarioHooks } from "./define.js";
export { loadScenarioSource } from "./load.js";
export type { RunSummary } from "./report.js";
export { type RunOptions, runScenario } from "./runner.js";
export { loadScenarioFile, parseScenario, type Scenario, type ScenarioInput } from "./schema.js";
