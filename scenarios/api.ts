/**
 * fedsim's package entry point (`import { defineStrategy, runScenario } from "fedsim"`), and its
 * contract: everything docs/API.md describes is exported here with its types, and nothing else
 * needs a deep import (package.json "exports" allows none). The CLI is `fedsim` (dist/cli/index.js).
 */

// TensorFlow.js as fedsim uses it: custom models must come from this copy, on fedsim's backend.
export * as tf from "@tensorflow/tfjs";

// Clients: real nodes, the workbench they train in, custom client logic.
export { ClientNode, type ClientNodeOptions } from "../client/node.js";
export { ModelWorkbench, type WorkbenchOptions } from "../client/workbench.js";
export type {
  ClientDefinition,
  ClientEvaluateContext,
  ClientEvaluateResult,
  ClientFitContext,
  ClientFitResult,
} from "../common/client-app.js";

// Data.
export type { Dataset, TrainTest } from "../common/data/dataset.js";
export { type PartitionScheme, partitionDataset } from "../common/data/partition.js";
export { type DatasetSpec, loadDataset } from "../common/data/registry.js";
export { ErrorCode, FedsimError, isFedsimError } from "../common/errors.js";

// The one registry of user definitions.
export {
  type DatasetArrays,
  type DatasetDefinition,
  type DatasetLoadOptions,
  defineClient,
  defineDataset,
  defineModel,
  defineStrategy,
  type ModelDefinition,
  type ModelOptions,
  registeredNames,
  type StrategyContext,
  type StrategyDefinition,
} from "../common/registry.js";
export type { Rng } from "../common/rng.js";
export { weightedMean } from "../common/strategy/aggregate.js";
// Strategies: the interfaces, the built-ins to wrap or extend, and the pure aggregation rules.
export { coordinateMedian, trimmedMean } from "../common/strategy/aggregate-robust.js";
export type {
  AnyStrategy,
  AsyncStepResult,
  AsyncStrategy,
  StaleUpdate,
} from "../common/strategy/async-strategy.js";
export { FedAsync, type FedAsyncOptions } from "../common/strategy/fedasync.js";
export { FedAvg, type FedAvgOptions } from "../common/strategy/fedavg.js";
export { FedAvgM, type FedAvgMOptions } from "../common/strategy/fedavgm.js";
export { FedBuff, type FedBuffOptions } from "../common/strategy/fedbuff.js";
export { FedMedian } from "../common/strategy/fedmedian.js";
export { FedAdagrad, FedAdam, type FedOptOptions, FedYogi } from "../common/strategy/fedopt.js";
export { FedProx, type FedProxOptions } from "../common/strategy/fedprox.js";
export { FedTrimmedAvg, type FedTrimmedAvgOptions } from "../common/strategy/fedtrimmedavg.js";
export { Krum, type KrumOptions, MultiKrum, type MultiKrumOptions } from "../common/strategy/krum.js";
export {
  type MetricsAggregationFn,
  type MetricsResult,
  weightedAverage,
} from "../common/strategy/metrics.js";
export { STRATEGY_NAMES, type StrategyName } from "../common/strategy/names.js";
export type {
  AggregateResult,
  AggregationInput,
  ClientFailure,
  ClientInfo,
  ClientUpdate,
  FailureReason,
  FitConfig,
  FitPlan,
  Strategy,
} from "../common/strategy/strategy.js";
export type { EvalResult, TrainData, TrainResult } from "../common/train/trainer.js";
export type { TensorSpec } from "../common/weights.js";

// The coordinator, and what each round records.
export { type CoordinatorHandle, type CoordinatorOptions, startCoordinator } from "../server/coordinator.js";
export type { FederatedEvaluation, RoundRecord } from "../server/round-record.js";

// Scenarios: define, parse, run; the round and run events hooks receive.
export {
  defineScenario,
  type RoundContext,
  type ScenarioDefinition,
  type ScenarioHooks,
} from "./define.js";
export { loadScenarioSource } from "./load.js";
export type { RunSummary } from "./report.js";
export { type RunOptions, runScenario } from "./runner.js";
export { loadScenarioFile, parseScenario, type Scenario, type ScenarioInput } from "./schema.js";
