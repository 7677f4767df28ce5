import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { FedsimError } from "../common/errors.js";
import { getFlatWeights, setFlatWeights } from "../common/models/tf-weights.js";
import { buildModel } from "../common/models/zoo.js";
import { createRng } from "../common/rng.js";
import { evaluate, type TrainData, trainLocal } from "../common/train/trainer.js";

beforeAll(async () => {
  await tf.setBackend("cpu");
  tf.enableProdMode();
});

function squaredDistance(a: Float32Array, b: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] - b[i]) ** 2;
  return sum;
}

/** Gaussian clusters in `dim` dimensions, one centre per class: easy to learn, not trivial. */
function clusteredVectors(n: number, dim: number, numClasses: number, seed: number): TrainData {
  const rng = createRng(seed);
  const centres = Array.from({ length: numClasses }, () =>
    Array.from({ length: dim }, () => rng.normal() * 1.5),
  );
  const x = new Float32Array(n * dim);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % numClasses;
    y[i] = c;
    for (let d = 0; d < dim; d++) x[i * dim + d] = centres[c][d] + rng.normal();
  }
  return { x, y, n, exampleShape: [dim], numClasses };
}

/** 8x8 grey images: class 0 is brighter on the left half, class 1 on the right, plus noise. */
function twoBlobImages(n: number, seed: number): TrainData {
  const rng = createRng(seed);
  const x = new Float32Array(n * 64);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 2;
    y[i] = c;
    for (let r = 0; r < 8; r++) {
      for (let col = 0; col < 8; col++) {
        const bright = col < 4 === (c === 0) ? 0.8 : 0.2;
        x[i * 64 + r * 8 + col] = bright + 0.3 * rng.normal();
      }
    }
  }
  return { x, y, n, exampleShape: [8, 8, 1], numClasses: 2 };
}

describe("trainLocal", () => {
  it("lowers the loss and raises the accuracy of tiny-mlp on clustered vectors", async () => {
    const data = clusteredVectors(400, 16, 4, 1);
    const model = buildModel("tiny-mlp", { inputShape: [16], numClasses: 4, seed: 7 });
    const before = await evaluate(model, data);
    const result = await trainLocal(model, data, {
      epochs: 3,
      batchSize: 20,
      learningRate: 0.1,
      seed: 3,
    });
    const after = await evaluate(model, data);
    expect(result.steps).toBe(60);
    expect(result.epochsCompleted).toBe(3);
    expect(result.numExamples).toBe(400);
    expect(after.loss).toBeLessThan(before.loss * 0.5);
    expect(after.accuracy).toBeGreaterThan(0.9);
    expect(after.accuracy).toBeGreaterThan(before.accuracy);
    expect(result.accuracy).toBeGreaterThan(0.8);
    model.dispose();
  });

  it("trains tiny-cnn on 8x8 two-blob images", async () => {
    const data = twoBlobImages(120, 2);
    const model = buildModel("tiny-cnn", { inputShape: [8, 8, 1], numClasses: 2, seed: 5 });
    const before = await evaluate(model, data, { batchSize: 64 });
    const losses: number[] = [];
    await trainLocal(model, data, {
      epochs: 3,
      batchSize: 10,
      learningRate: 0.1,
      seed: 1,
      onBatch: (_step, loss) => losses.push(loss),
    });
    const after = await evaluate(model, data, { batchSize: 64 });
    expect(losses).toHaveLength(36);
    expect(after.loss).toBeLessThan(before.loss);
    expect(after.accuracy).toBeGreaterThan(0.9);
    model.dispose();
  });

  it("stops at maxSteps mid-epoch and reports what it saw", async () => {
    const data = clusteredVectors(100, 16, 4, 4);
    const model = buildModel("logreg", { inputShape: [16], numClasses: 4, seed: 1 });
    const result = await trainLocal(model, data, {
      epochs: 5,
      batchSize: 10,
      learningRate: 0.05,
      seed: 2,
      maxSteps: 3,
    });
    expect(result.steps).toBe(3);
    expect(result.epochsCompleted).toBe(0);
    expect(result.numExamples).toBe(30);
    model.dispose();
  });

  it("keeps the weights closer to the start with a large proximal mu (FedProx)", async () => {
    const data = clusteredVectors(200, 16, 4, 5);
    const distanceMoved = async (mu: number): Promise<number> => {
      const model = buildModel("tiny-mlp", { inputShape: [16], numClasses: 4, seed: 11 });
      const start = getFlatWeights(model).values;
      await trainLocal(model, data, {
        epochs: 3,
        batchSize: 10,
        learningRate: 0.05,
        seed: 9,
        proximalMu: mu,
      });
      const moved = squaredDistance(getFlatWeights(model).values, start);
      model.dispose();
      return Math.sqrt(moved);
    };
    const free = await distanceMoved(0);
    const anchored = await distanceMoved(10);
    expect(free).toBeGreaterThan(0);
    expect(anchored).toBeLessThan(free * 0.5);
  });

  it("gives identical weights and metrics for the same seed", async () => {
    const data = clusteredVectors(120, 16, 4, 6);
    const run = async (seed: number) => {
      const model = buildModel("tiny-mlp", { inputShape: [16], numClasses: 4, seed: 3 });
      const result = await trainLocal(model, data, {
        epochs: 2,
        batchSize: 8,
        learningRate: 0.05,
        seed,
        proximalMu: 0.1,
      });
      const weights = getFlatWeights(model).values;
      model.dispose();
      return { result, weights };
    };
    const a = await run(42);
    const b = await run(42);
    const c = await run(43);
    expect(Array.from(a.weights)).toEqual(Array.from(b.weights));
    expect(a.result.loss).toBe(b.result.loss);
    expect(a.result.accuracy).toBe(b.result.accuracy);
    // A different batch order must change something, or the seed would not matter.
    expect(Array.from(c.weights)).not.toEqual(Array.from(a.weights));
  });

  it("leaves no tensors behind across repeated train and evaluate calls", async () => {
    const data = twoBlobImages(40, 3);
    const model = buildModel("tiny-cnn", { inputShape: [8, 8, 1], numClasses: 2, seed: 2 });
    const tensorsBefore = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      await trainLocal(model, data, {
        epochs: 1,
        batchSize: 8,
        learningRate: 0.05,
        seed: i,
        proximalMu: 0.5,
      });
      await evaluate(model, data, { batchSize: 16 });
      setFlatWeights(model, getFlatWeights(model));
    }
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    model.dispose();
  });

  it("yields to the event loop during training", async () => {
    const data = clusteredVectors(200, 16, 4, 8);
    const model = buildModel("tiny-mlp", { inputShape: [16], numClasses: 4, seed: 1 });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    await trainLocal(model, data, {
      epochs: 2,
      batchSize: 5,
      learningRate: 0.05,
      seed: 0,
      yieldEveryMs: 0,
    });
    clearInterval(timer);
    expect(ticks).toBeGreaterThan(0);
    model.dispose();
  });

  it("rejects invalid options and mismatched data with typed errors", async () => {
    const data = clusteredVectors(20, 16, 4, 9);
    const model = buildModel("logreg", { inputShape: [16], numClasses: 4, seed: 1 });
    const base = { epochs: 1, batchSize: 5, learningRate: 0.1, seed: 0 };
    await expect(trainLocal(model, data, { ...base, learningRate: 0 })).rejects.toMatchObject({
      code: "INVALID_CONFIG",
    });
    await expect(trainLocal(model, data, { ...base, proximalMu: -1 })).rejects.toMatchObject({
      code: "INVALID_CONFIG",
    });
    const badLabels = { ...data, y: data.y.map((v) => v + 4) };
    await expect(trainLocal(model, badLabels, base)).rejects.toMatchObject({ code: "BAD_DATA" });
    const wrongShape = clusteredVectors(20, 8, 4, 9);
    await expect(trainLocal(model, wrongShape, base)).rejects.toBeInstanceOf(FedsimError);
    await expect(trainLocal(model, wrongShape, base)).rejects.toMatchObject({ code: "BAD_SHAPE" });
    model.dispose();
  });
});

describe("evaluate", () => {
  it("matches a hand computation of mean cross-entropy and accuracy", async () => {
    const data = clusteredVectors(30, 16, 4, 10);
    const model = buildModel("logreg", { inputShape: [16], numClasses: 4, seed: 4 });
    const probs = tf.tidy(() => {
      const out = model.predict(tf.tensor(data.x, [30, 16])) as tf.Tensor;
      return out.arraySync() as number[][];
    });
    let loss = 0;
    let correct = 0;
    probs.forEach((row, i) => {
      loss -= Math.log(Math.max(1e-7, row[data.y[i]]));
      if (row.indexOf(Math.max(...row)) === data.y[i]) correct++;
    });
    const result = await evaluate(model, data, { batchSize: 7 });
    expect(result.numExamples).toBe(30);
    expect(result.loss).toBeCloseTo(loss / 30, 5);
    expect(result.accuracy).toBeCloseTo(correct / 30, 10);
    model.dispose();
  });
});
