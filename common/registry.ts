import type * as tf from "@tensorflow/tfjs";
import type { ClientDefinition } from "./client-app.js";
import { DATASET_NAMES } from "./data/names.js";
import { ErrorCode, FedsimError } from "./errors.js";
import { MODEL_NAMES } from "./models/names.js";
import type { AnyStrategy } from "./strategy/async-strategy.js";
import type { FedAvgOptions } from "./strategy/fedavg.js";
import { STRATEGY_NAMES, type StrategyName } from "./strategy/names.js";

/**
 * The one registry of user definitions: strategies, models, datasets and client logic, by name.
 * `defineStrategy`, `defineModel`, `defineDataset` and `defineClient` are typed identity helpers
 * (like Vite's defineConfig) that also register what they return, so scenarios and
 * `fedsim run --strategy` can name it. The registry is this process's module state: a forked
 * pool process sees a definition only if it imports the module that made it (RunOptions.modules;
 * docs/API.md, "Where definitions are visible").
 */

/** What a registered strategy is built from: the scenario's settings, ready to use. */
export interface StrategyContext {
  /** Sampling, fit config (with its schedule), DP's uniform weights: what FedAvg and its kin take. */
  fedAvgOptions: FedAvgOptions;
  /** The scenario's `strategy.options`, for the strategy's own parameters (check them yourself). */
  options: Readonly<Record<string, unknown>>;
  rounds: number;
  clients: number;
  seed: number;
  /** A built-in strategy with the scenario's settings, e.g. to wrap it. */
  builtin(name: StrategyName): AnyStrategy;
}

export interface StrategyDefinition {
  name: string;
  /** One line for listings. */
  description?: string;
  create(context: StrategyContext): AnyStrategy;
}

export interface ModelOptions {
  /** One example's shape, without the batch axis: the dataset's, e.g. [28, 28, 1]. */
  inputShape: number[];
  numClasses: number;
  /** The run's seed, for kernel initialisers (so reruns start from the same weights). */
  seed?: number;
}

export interface ModelDefinition {
  name: string;
  description?: string;
  /**
   * A fresh model ending in a softmax over numClasses. Name every layer: fedsim matches weights
   * across processes by layer name (`trainableLayers` names them too).
   */
  build(options: ModelOptions): tf.LayersModel;
}

export interface DatasetLoadOptions {
  /** The scenario's seed, for anything random at load time. */
  seed: number;
  /** The scenario's `dataset.path` and `dataset.dataDir`, resolved against the scenario file. */
  path?: string;
  dataDir?: string;
  /** The scenario's `dataset.options`. */
  options: Readonly<Record<string, unknown>>;
}

/** One split as a loader returns it: typed arrays, or plain number arrays that fedsim converts. */
export interface DatasetArrays {
  /** n × (product of exampleShape) values, row-major, already scaled (e.g. pixels in [0, 1]). */
  x: Float32Array | readonly number[];
  /** n integer labels in [0, numClasses). */
  y: Int32Array | readonly number[];
  /** One example's shape, e.g. [28, 28, 1] or [20]. */
  exampleShape: number[];
  numClasses: number;
  /** Per-example group (writer, device), for the "natural" partition. */
  groups?: Int32Array | readonly number[];
}

export interface DatasetDefinition {
  name: string;
  description?: string;
  /**
   * The train and test sets. Called once per process that needs the data (the coordinator and
   * each pool), so it must return the same examples every time for the same options.
   */
  load(
    options: DatasetLoadOptions,
  ):
    | { train: DatasetArrays; test: DatasetArrays; source?: string }
    | Promise<{ train: DatasetArrays; test: DatasetArrays; source?: string }>;
}

interface Kinds {
  strategy: StrategyDefinition;
  model: ModelDefinition;
  dataset: DatasetDefinition;
  client: ClientDefinition;
}

export type DefinitionKind = keyof Kinds;

const BUILTIN: Record<DefinitionKind, readonly string[]> = {
  strategy: STRATEGY_NAMES,
  model: MODEL_NAMES,
  dataset: DATASET_NAMES,
  client: [],
};

const definitions: { [K in DefinitionKind]: Map<string, Kinds[K]> } = {
  strategy: new Map(),
  model: new Map(),
  dataset: new Map(),
  client: new Map(),
};

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function register<K extends DefinitionKind>(
  kind: K,
  definition: Kinds[K],
  check: (def: Kinds[K]) => void,
): Kinds[K] {
  const name = (definition as { name?: unknown } | null)?.name;
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `define${capital(kind)}: name must be 1–64 letters, digits, "_", "." or "-", got ${JSON.stringify(name)}`,
    );
  }
  if (BUILTIN[kind].includes(name)) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `define${capital(kind)}: "${name}" is a built-in ${kind}; choose another name`,
    );
  }
  check(definition);
  // The last definition of a name wins, so a module imported again (a pool, a reloaded script) is fine.
  definitions[kind].set(name, definition);
  return definition;
}

function requireFunction(kind: DefinitionKind, name: string, value: unknown, field: string): void {
  if (typeof value !== "function") {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `define${capital(kind)} "${name}": ${field} must be a function`,
    );
  }
}

function capital(kind: DefinitionKind): string {
  return kind[0].toUpperCase() + kind.slice(1);
}

/** Registers a strategy under its name, for scenarios (`strategy.name`) and `--strategy`. */
export function defineStrategy<T extends StrategyDefinition>(definition: T): T {
  return register("strategy", definition, (d) =>
    requireFunction("strategy", d.name, d.create, "create"),
  ) as T;
}

/** Registers a model architecture under its name, for scenarios (`model:`). */
export function defineModel<T extends ModelDefinition>(definition: T): T {
  return register("model", definition, (d) => requireFunction("model", d.name, d.build, "build")) as T;
}

/** Registers a dataset loader under its name, for scenarios (`dataset.name`). */
export function defineDataset<T extends DatasetDefinition>(definition: T): T {
  return register("dataset", definition, (d) => requireFunction("dataset", d.name, d.load, "load")) as T;
}

/** Registers client logic under its name, for scenarios (`client:`) and client nodes. */
export function defineClient<T extends ClientDefinition>(definition: T): T {
  return register("client", definition, (d) => {
    if (d.fit !== undefined) requireFunction("client", d.name, d.fit, "fit");
    if (d.evaluate !== undefined) requireFunction("client", d.name, d.evaluate, "evaluate");
  }) as T;
}

export function registeredStrategy(name: string): StrategyDefinition | undefined {
  return definitions.strategy.get(name);
}

export function registeredModel(name: string): ModelDefinition | undefined {
  return definitions.model.get(name);
}

export function registeredDataset(name: string): DatasetDefinition | undefined {
  return definitions.dataset.get(name);
}

export function registeredClient(name: string): ClientDefinition | undefined {
  return definitions.client.get(name);
}

/** The names registered in this process, sorted. */
export function registeredNames(kind: DefinitionKind): string[] {
  return [...definitions[kind].keys()].sort();
}

/** Built-in and registered names, for "choose one of" messages. */
export function knownNames(kind: DefinitionKind): string[] {
  return [...BUILTIN[kind], ...registeredNames(kind)];
}
