/**
 * A tiny learnable task for load and soak runs, where the federation's machinery is measured,
 * not the model: 16 features, 4 classes, labels from a fixed random linear teacher. Any process
 * rebuilds the same data from the seed, so forked client hosts need no files.
 */
import type { Dataset } from "../../common/data/dataset.js";
import { createRng, deriveSeed, type Rng } from "../../common/rng.js";

export const TINY_FEATURES = 16;
export const TINY_CLASSES = 4;

function teacher(seed: number): Float32Array {
  const rng = createRng(deriveSeed(seed, "tiny-task", "teacher"));
  return Float32Array.from({ length: TINY_FEATURES * TINY_CLASSES }, () => rng.normal());
}

function draw(rng: Rng, w: Float32Array, n: number, name: string): Dataset {
  const x = new Float32Array(n * TINY_FEATURES);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bestScore = Number.NEGATIVE_INFINITY;
    for (let f = 0; f < TINY_FEATURES; f++) x[i * TINY_FEATURES + f] = rng.normal();
    for (let c = 0; c < TINY_CLASSES; c++) {
      let score = 0;
      for (let f = 0; f < TINY_FEATURES; f++) score += x[i * TINY_FEATURES + f] * w[f * TINY_CLASSES + c];
      if (score > bestScore) {
        bestScore = score;
        best = c;
      }
    }
    y[i] = best;
  }
  return { name, x, y, n, exampleShape: [TINY_FEATURES], numClasses: TINY_CLASSES };
}

/** Client `index`'s own examples. */
export function tinyClientData(seed: number, index: number, examples: number): Dataset {
  return draw(
    createRng(deriveSeed(seed, "tiny-task", "client", index)),
    teacher(seed),
    examples,
    `tiny-${index}`,
  );
}

/** The coordinator's held-out set. */
export function tinyTestData(seed: number, examples = 256): Dataset {
  return draw(createRng(deriveSeed(seed, "tiny-task", "test")), teacher(seed), examples, "tiny-test");
}
