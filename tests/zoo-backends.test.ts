import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { getFlatWeights } from "../common/models/tf-weights.js";
import { buildModel, MODEL_NAMES, type ModelName } from "../common/models/zoo.js";
import { initBackend } from "../common/tf/backend.js";
import { trainLocal } from "../common/train/trainer.js";

const SHAPES: Record<ModelName, number[]> = {
  "mnist-2nn": [28, 28, 1],
  "mnist-cnn": [28, 28, 1],
  "tiny-cnn": [28, 28, 1],
  "tiny-mlp": [28, 28, 1],
  logreg: [60],
};

/** Every zoo model must take real gradient steps on every backend that loads here. */
describe.each(["wasm", "cpu"] as const)("the model zoo on the %s backend", (backend) => {
  it.each(MODEL_NAMES)("%s trains: weights move, stay finite, no tensor leaks", async (name) => {
    await initBackend(backend);
    const shape = SHAPES[name];
    const features = shape.reduce((a, b) => a * b, 1);
    const n = 4;
    const x = new Float32Array(n * features).map((_, i) => ((i * 7919) % 101) / 101);
    const y = Int32Array.from({ length: n }, (_, i) => i % 10);
    const model = buildModel(name, { inputShape: shape, numClasses: 10, seed: 1 });
    const before = getFlatWeights(model).values;
    const tensors = tf.memory().numTensors;
    // The big CNN on pure-JS cpu takes seconds per example: one step of batch 2 proves it trains.
    const result = await trainLocal(
      model,
      { x, y, n, exampleShape: shape, numClasses: 10 },
      {
        epochs: 1,
        batchSize: 2,
        learningRate: 0.1,
        seed: 1,
        maxSteps: name === "mnist-cnn" ? 1 : 2,
      },
    );
    expect(tf.memory().numTensors).toBe(tensors);
    const after = getFlatWeights(model).values;
    let moved = 0;
    let nonFinite = 0;
    for (let i = 0; i < after.length; i++) {
      if (!Number.isFinite(after[i])) nonFinite++;
      if (after[i] !== before[i]) moved++;
    }
    expect(nonFinite).toBe(0);
    expect(moved).toBeGreaterThan(0);
    expect(Number.isFinite(result.loss)).toBe(true);
    model.dispose();
  });
});
