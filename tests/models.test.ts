import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { FedsimError } from "../common/errors.js";
import {
  getFlatWeights,
  modelSpecs,
  setFlatWeights,
  setTrainableLayers,
} from "../common/models/tf-weights.js";
import { buildModel, countParams, MODEL_NAMES, type ModelName } from "../common/models/zoo.js";
import { createRng } from "../common/rng.js";
import { trainLocal } from "../common/train/trainer.js";
import { selectTensors } from "../common/weights.js";

beforeAll(async () => {
  await tf.setBackend("cpu");
  tf.enableProdMode();
});

function predict(model: tf.LayersModel, x: Float32Array, shape: number[]): number[] {
  return tf.tidy(() => Array.from((model.predict(tf.tensor(x, shape)) as tf.Tensor).dataSync()));
}

function randomInputs(n: number, size: number, seed: number): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: n * size }, () => rng.next());
}

describe("model zoo", () => {
  it("builds FedAvg's 2NN with exactly 199,210 parameters", () => {
    const model = buildModel("mnist-2nn", { inputShape: [28, 28, 1], numClasses: 10 });
    expect(countParams(model)).toBe(199_210);
    model.dispose();
    const flat = buildModel("mnist-2nn", { inputShape: [784], numClasses: 10 });
    expect(countParams(flat)).toBe(199_210);
    flat.dispose();
  });

  it("builds FedAvg's CNN with exactly 1,663,370 parameters", () => {
    const model = buildModel("mnist-cnn", { inputShape: [28, 28, 1], numClasses: 10 });
    expect(countParams(model)).toBe(1_663_370);
    expect(model.layers.map((l) => l.name)).toEqual([
      "conv1",
      "pool1",
      "conv2",
      "pool2",
      "flatten",
      "fc1",
      "out",
    ]);
    model.dispose();
  });

  it("builds every model with a softmax over numClasses", () => {
    for (const name of MODEL_NAMES) {
      const model = buildModel(name, { inputShape: [8, 8, 1], numClasses: 3, seed: 1 });
      const out = predict(model, randomInputs(2, 64, 1), [2, 8, 8, 1]);
      expect(out).toHaveLength(6);
      expect(out[0] + out[1] + out[2]).toBeCloseTo(1, 5);
      model.dispose();
    }
  });

  it("gives the same layer and tensor names to two builds in one process", () => {
    for (const name of MODEL_NAMES) {
      const a = buildModel(name, { inputShape: [8, 8, 1], numClasses: 2 });
      const b = buildModel(name, { inputShape: [8, 8, 1], numClasses: 2 });
      expect(b.layers.map((l) => l.name)).toEqual(a.layers.map((l) => l.name));
      expect(modelSpecs(b)).toEqual(modelSpecs(a));
      a.dispose();
      b.dispose();
    }
  });

  it("names tensors layer/weight, e.g. fc1/kernel", () => {
    const model = buildModel("mnist-2nn", { inputShape: [784], numClasses: 10 });
    expect(modelSpecs(model)).toEqual([
      { name: "fc1/kernel", shape: [784, 200] },
      { name: "fc1/bias", shape: [200] },
      { name: "fc2/kernel", shape: [200, 200] },
      { name: "fc2/bias", shape: [200] },
      { name: "out/kernel", shape: [200, 10] },
      { name: "out/bias", shape: [10] },
    ]);
    model.dispose();
  });

  it("gives identical weights for the same seed and different ones otherwise", () => {
    const build = (seed?: number) => buildModel("tiny-cnn", { inputShape: [8, 8, 1], numClasses: 2, seed });
    const [a, b, c, d] = [build(3), build(3), build(4), build()];
    const values = (m: tf.LayersModel) => Array.from(getFlatWeights(m).values);
    expect(values(b)).toEqual(values(a));
    expect(values(c)).not.toEqual(values(a));
    expect(values(d)).not.toEqual(values(a));
    // Layers get their own seeds: two same-shaped kernels must not be copies of each other.
    const twoNn = buildModel("mnist-2nn", { inputShape: [200], numClasses: 10, seed: 1 });
    const flat = getFlatWeights(twoNn);
    const fc1 = selectTensors(flat, new Set(["fc1/kernel"])).values;
    const fc2 = selectTensors(flat, new Set(["fc2/kernel"])).values;
    expect(Array.from(fc1)).not.toEqual(Array.from(fc2));
    for (const m of [a, b, c, d, twoNn]) m.dispose();
  });

  it("rejects unknown models and bad options with INVALID_CONFIG", () => {
    const call = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        return err;
      }
      return null;
    };
    const unknown = call(() => buildModel("resnet" as ModelName, { inputShape: [4], numClasses: 2 }));
    expect(unknown).toBeInstanceOf(FedsimError);
    expect((unknown as FedsimError).code).toBe("INVALID_CONFIG");
    expect((unknown as FedsimError).message).toContain("mnist-cnn");
    expect(
      (call(() => buildModel("mnist-cnn", { inputShape: [784], numClasses: 10 })) as FedsimError).code,
    ).toBe("INVALID_CONFIG");
    expect((call(() => buildModel("logreg", { inputShape: [4], numClasses: 1 })) as FedsimError).code).toBe(
      "INVALID_CONFIG",
    );
  });
});

describe("flat weights bridge", () => {
  it("round-trips weights into a second instance with identical predictions", () => {
    const a = buildModel("tiny-cnn", { inputShape: [8, 8, 1], numClasses: 3, seed: 1 });
    const b = buildModel("tiny-cnn", { inputShape: [8, 8, 1], numClasses: 3, seed: 2 });
    const x = randomInputs(4, 64, 9);
    expect(predict(b, x, [4, 8, 8, 1])).not.toEqual(predict(a, x, [4, 8, 8, 1]));
    const weights = getFlatWeights(a);
    expect(weights.values.length).toBe(countParams(a));
    const tensorsBefore = tf.memory().numTensors;
    setFlatWeights(b, weights);
    expect(tf.memory().numTensors).toBe(tensorsBefore);
    expect(predict(b, x, [4, 8, 8, 1])).toEqual(predict(a, x, [4, 8, 8, 1]));
    // The model must not alias the caller's array.
    weights.values.fill(0);
    expect(predict(b, x, [4, 8, 8, 1])).toEqual(predict(a, x, [4, 8, 8, 1]));
    a.dispose();
    b.dispose();
  });

  it("shareValues: the model views the caller's weights, and training never writes into them", async () => {
    const a = buildModel("tiny-cnn", { inputShape: [8, 8, 1], numClasses: 3, seed: 1 });
    const b = buildModel("tiny-cnn", { inputShape: [8, 8, 1], numClasses: 3, seed: 2 });
    const shared = getFlatWeights(a);
    const pristine = shared.values.slice();
    setFlatWeights(b, shared, { shareValues: true });
    const x = randomInputs(4, 64, 9);
    expect(predict(b, x, [4, 8, 8, 1])).toEqual(predict(a, x, [4, 8, 8, 1]));
    // Viewed, not copied: a write to the caller's array shows in the model.
    shared.values[0] += 1;
    expect(getFlatWeights(b).values[0]).toBe(shared.values[0]);
    shared.values[0] = pristine[0];
    const data = { x: randomInputs(12, 64, 3), y: Int32Array.from({ length: 12 }, (_, i) => i % 3) };
    await trainLocal(
      b,
      { ...data, n: 12, exampleShape: [8, 8, 1], numClasses: 3 },
      {
        epochs: 2,
        batchSize: 4,
        learningRate: 0.5,
        seed: 1,
      },
    );
    expect(getFlatWeights(b).values).not.toEqual(pristine);
    expect(shared.values).toEqual(pristine);
    a.dispose();
    b.dispose();
  });

  it("accepts a subset of tensors and leaves the others alone", () => {
    const model = buildModel("tiny-mlp", { inputShape: [5], numClasses: 2, seed: 1 });
    const before = getFlatWeights(model);
    setFlatWeights(model, { specs: [{ name: "out/bias", shape: [2] }], values: new Float32Array([3, -3]) });
    const after = getFlatWeights(model);
    expect(Array.from(selectTensors(after, new Set(["out/bias"])).values)).toEqual([3, -3]);
    const others = new Set(["fc1/kernel", "fc1/bias", "out/kernel"]);
    expect(selectTensors(after, others).values).toEqual(selectTensors(before, others).values);
    model.dispose();
  });

  it("refuses unknown names and wrong shapes with BAD_SHAPE, writing nothing", () => {
    const model = buildModel("tiny-mlp", { inputShape: [5], numClasses: 2, seed: 1 });
    const before = getFlatWeights(model).values;
    const attempt = (specs: { name: string; shape: number[] }[], n: number) => {
      try {
        setFlatWeights(model, { specs, values: new Float32Array(n).fill(7) });
      } catch (err) {
        return (err as FedsimError).code;
      }
      return "no error";
    };
    expect(attempt([{ name: "fc9/kernel", shape: [5, 32] }], 160)).toBe("BAD_SHAPE");
    expect(attempt([{ name: "fc1/kernel", shape: [32, 5] }], 160)).toBe("BAD_SHAPE");
    expect(attempt([{ name: "fc1/bias", shape: [32] }], 31)).toBe("BAD_SHAPE");
    expect(
      attempt(
        [
          { name: "fc1/bias", shape: [32] },
          { name: "out/bias", shape: [3] },
        ],
        35,
      ),
    ).toBe("BAD_SHAPE");
    expect(getFlatWeights(model).values).toEqual(before);
    model.dispose();
  });

  it("excludes frozen layers from trainable specs but keeps model order", () => {
    const model = buildModel("mnist-2nn", { inputShape: [20], numClasses: 4 });
    setTrainableLayers(model, ["out", "fc1"]);
    expect(modelSpecs(model, { trainableOnly: true }).map((s) => s.name)).toEqual([
      "fc1/kernel",
      "fc1/bias",
      "out/kernel",
      "out/bias",
    ]);
    expect(modelSpecs(model).map((s) => s.name)).toEqual([
      "fc1/kernel",
      "fc1/bias",
      "fc2/kernel",
      "fc2/bias",
      "out/kernel",
      "out/bias",
    ]);
    setTrainableLayers(model, null);
    expect(modelSpecs(model, { trainableOnly: true })).toHaveLength(6);
    let error: unknown;
    try {
      setTrainableLayers(model, ["fc1", "head"]);
    } catch (err) {
      error = err;
    }
    expect((error as FedsimError).code).toBe("INVALID_CONFIG");
    expect((error as FedsimError).message).toContain("head");
    expect((error as FedsimError).message).toContain("fc2");
    model.dispose();
  });

  it("leaves frozen layers bit-for-bit unchanged by trainLocal while trainable ones move", async () => {
    const n = 60;
    const rng = createRng(2);
    const x = Float32Array.from({ length: n * 6 }, () => rng.normal());
    const y = Int32Array.from({ length: n }, (_, i) => (x[i * 6] > 0 ? 1 : 0));
    const data = { x, y, n, exampleShape: [6], numClasses: 2 };
    const model = buildModel("tiny-mlp", { inputShape: [6], numClasses: 2, seed: 3 });
    setTrainableLayers(model, ["out"]);
    const before = getFlatWeights(model);
    await trainLocal(model, data, { epochs: 2, batchSize: 10, learningRate: 0.1, seed: 1 });
    const after = getFlatWeights(model);
    const frozen = new Set(["fc1/kernel", "fc1/bias"]);
    const trained = new Set(["out/kernel", "out/bias"]);
    expect(selectTensors(after, frozen).values).toEqual(selectTensors(before, frozen).values);
    expect(Array.from(selectTensors(after, trained).values)).not.toEqual(
      Array.from(selectTensors(before, trained).values),
    );
    model.dispose();
  });
});
