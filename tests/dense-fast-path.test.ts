/**
 * The fast path (common/train/fast-path-*.ts) on Dense-only models against trainLocal's tfjs path: same
 * weights, metrics and counts on the models it takes, a reasoned refusal (and unchanged results) on the
 * ones it does not. CNNs: tests/cnn-fast-path.test.ts. The comparisons need the native addon
 * (describe.runIf); they cannot pass vacuously in CI: "the native addon is available" fails when CI or
 * FEDSIM_REQUIRE_NATIVE=1 is set and the addon does not load.
 */
import * as tf from "@tensorflow/tfjs";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { getFlatWeights, setFlatWeights, setTrainableLayers } from "../common/models/tf-weights.js";
import { buildModel, type ModelName } from "../common/models/zoo.js";
import { initBackend } from "../common/tf/backend.js";
import { nativeStatus } from "../common/tf/native.js";
import { DENSE_FAST_PATH_ENV, FAST_PATH_ENV } from "../common/train/fast-path-plan.js";
import { fastPathPlan, trainLocal } from "../common/train/trainer.js";
import {
  expectSameTraining,
  randomData,
  restoreFastPathSwitches,
  setFastPath,
  train,
  trainBothPaths,
} from "./helpers/fast-path-compare.js";
import { bitEqual } from "./helpers/fuzz.js";
import { relativeError } from "./helpers/kernel-compare.js";
import { expectNativeWhenRequired } from "./helpers/native-required.js";

const status = nativeStatus();

afterEach(restoreFastPathSwitches);

function modelFor(name: ModelName, exampleShape: number[], numClasses: number, seed: number): tf.LayersModel {
  return buildModel(name, { inputShape: exampleShape, numClasses, seed });
}

it("the native addon is available when CI or FEDSIM_REQUIRE_NATIVE=1 is set", () => {
  expectNativeWhenRequired(status.available, status.reason);
});

describe("on a non-native backend", () => {
  beforeAll(async () => {
    await initBackend("cpu");
  });

  it("the plan refuses with the backend as the reason and training takes the tfjs path", async () => {
    const model = modelFor("tiny-mlp", [12], 3, 1);
    try {
      const plan = fastPathPlan(model);
      expect("unsupported" in plan && plan.unsupported).toMatch(/backend is cpu/);
      const data = randomData(20, [12], 3, 2);
      const result = await trainLocal(model, data, { epochs: 1, batchSize: 5, learningRate: 0.1, seed: 3 });
      expect(result.path).toBe("tfjs");
      expect(result.steps).toBe(4);
    } finally {
      model.dispose();
    }
  });
});

describe.runIf(status.available)("the fast path on Dense models on the native backend", () => {
  beforeAll(async () => {
    await initBackend("native");
  });

  it("tiny-mlp (with a Flatten and a partial last batch) trains like the tfjs path", async () => {
    const data = randomData(47, [4, 4, 1], 5, 11);
    const model = modelFor("tiny-mlp", [4, 4, 1], 5, 12);
    try {
      const opts = { epochs: 4, batchSize: 10, learningRate: 0.2, seed: 13 };
      const { fast, tfjs, start } = await trainBothPaths(model, data, opts);
      expectSameTraining(fast, tfjs, start);
      expect(fast.result.steps).toBe(20);
      expect(fast.result.epochsCompleted).toBe(4);
    } finally {
      model.dispose();
    }
  });

  it("mnist-2nn on random images trains like the tfjs path, with and without FedProx", async () => {
    const data = randomData(120, [784], 10, 21);
    const model = modelFor("mnist-2nn", [784], 10, 22);
    try {
      // 0 again last: FedProx's anchors outlive its fit, and a plain fit after it must not use them.
      for (const proximalMu of [0, 0.1, 0]) {
        const opts = { epochs: 3, batchSize: 10, learningRate: 0.05, seed: 23, maxSteps: 30, proximalMu };
        const { fast, tfjs, start } = await trainBothPaths(model, data, opts);
        expectSameTraining(fast, tfjs, start);
        expect(fast.result.steps).toBe(30);
        expect(fast.result.epochsCompleted).toBe(2);
        setFlatWeights(model, { specs: getFlatWeights(model).specs, values: start });
      }
    } finally {
      model.dispose();
    }
  });

  it("FedProx pulls towards the start weights: mu > 0 changes the result on the fast path", async () => {
    const data = randomData(40, [12], 3, 31);
    const model = modelFor("tiny-mlp", [12], 3, 32);
    try {
      const start = getFlatWeights(model);
      const opts = { epochs: 3, batchSize: 8, learningRate: 0.5, seed: 33 };
      const plain = await train(model, data, opts, true);
      setFlatWeights(model, start);
      const prox = await train(model, data, { ...opts, proximalMu: 1 }, true);
      expect(prox.result.path).toBe("fast-path");
      expect(relativeError(prox.weights, start.values)).toBeLessThan(
        relativeError(plain.weights, start.values),
      );
    } finally {
      model.dispose();
    }
  });

  it("probabilities clipped below 1e-7 get the clip's zero gradient, as on the tfjs path", async () => {
    const data = randomData(30, [12], 4, 41);
    // Large inputs make large logit gaps: some true-class probabilities land in (0, 1e-7), where the
    // clip's gradient is 0 while the unclipped softmax/cross-entropy gradient is not.
    for (let i = 0; i < data.x.length; i++) data.x[i] *= 40;
    const model = modelFor("logreg", [12], 4, 42);
    try {
      const probs = tf.tidy(() => (model.predict(tf.tensor(data.x, [30, 12])) as tf.Tensor).dataSync());
      const clipped = Array.from(data.y).filter((label, r) => {
        const p = probs[r * 4 + label];
        return p > 0 && p < 1e-7;
      }).length;
      expect(clipped).toBeGreaterThan(0);
      const opts = { epochs: 2, batchSize: 6, learningRate: 0.002, seed: 43 };
      const { fast, tfjs, start } = await trainBothPaths(model, data, opts);
      expectSameTraining(fast, tfjs, start);
      expect(fast.result.loss).toBeGreaterThan(1);
    } finally {
      model.dispose();
    }
  });

  it("leaves no tensors behind and the model holds the trained weights", async () => {
    const data = randomData(30, [784], 10, 51);
    const model = modelFor("mnist-2nn", [784], 10, 52);
    try {
      const before = getFlatWeights(model).values;
      const tensors = tf.memory().numTensors;
      const opts = { epochs: 1, batchSize: 10, learningRate: 0.1, seed: 53 };
      const { result } = await train(model, data, opts, true);
      expect(result.path).toBe("fast-path");
      expect(tf.memory().numTensors).toBe(tensors);
      const after = getFlatWeights(model).values;
      expect(relativeError(after, before)).toBeGreaterThan(1e-3);
      // A second fit continues from the written-back weights, not from a stale copy.
      const second = await train(model, data, opts, true);
      expect(relativeError(second.weights, after)).toBeGreaterThan(1e-4);
      expect(tf.memory().numTensors).toBe(tensors);
    } finally {
      model.dispose();
    }
  });

  it("weights shared into the model (shareValues) are not written by the fast path", async () => {
    const data = randomData(20, [12], 3, 56);
    const model = modelFor("tiny-mlp", [12], 3, 57);
    try {
      const shared = getFlatWeights(model);
      const pristine = shared.values.slice();
      setFlatWeights(model, shared, { shareValues: true });
      const run = await train(model, data, { epochs: 1, batchSize: 5, learningRate: 0.1, seed: 58 }, true);
      expect(run.result.path).toBe("fast-path");
      expect(bitEqual(run.weights, pristine)).toBe(false);
      expect(bitEqual(shared.values, pristine)).toBe(true);
    } finally {
      model.dispose();
    }
  });

  it("FEDSIM_FAST_PATH=0 turns it off, and so does the older FEDSIM_DENSE_FAST_PATH=0", () => {
    const model = modelFor("mnist-2nn", [784], 10, 61);
    try {
      setFastPath(true);
      expect("unsupported" in fastPathPlan(model)).toBe(false);
      for (const name of [FAST_PATH_ENV, DENSE_FAST_PATH_ENV]) {
        setFastPath(true);
        process.env[name] = "0";
        const plan = fastPathPlan(model);
        expect("unsupported" in plan && plan.unsupported).toBe(`disabled by ${name}=0`);
        // Any other value leaves it on.
        process.env[name] = "1";
        expect("unsupported" in fastPathPlan(model)).toBe(false);
      }
    } finally {
      model.dispose();
    }
  });

  it("refuses unsupported layers, regularised Dense layers and other activations with a reason", () => {
    const refusals: Array<[tf.LayersModel, RegExp]> = [
      [tanhActivationLayerModel(), /act is a Activation, which the fast path does not train/],
      [
        tf.sequential({
          layers: [
            tf.layers.dense({
              units: 4,
              activation: "relu",
              inputShape: [6],
              kernelRegularizer: tf.regularizers.l2(),
            }),
            tf.layers.dense({ units: 3, activation: "softmax" }),
          ],
        }),
        /kernelRegularizer/,
      ],
      [
        tf.sequential({
          layers: [
            tf.layers.dense({ units: 4, activation: "tanh", inputShape: [6] }),
            tf.layers.dense({ units: 3, activation: "softmax" }),
          ],
        }),
        /activation tanh/,
      ],
      [
        tf.sequential({ layers: [tf.layers.dense({ units: 3, activation: "sigmoid", inputShape: [6] })] }),
        /activation sigmoid/,
      ],
    ];
    for (const [model, reason] of refusals) {
      const plan = fastPathPlan(model);
      expect("unsupported" in plan && plan.unsupported).toMatch(reason);
      model.dispose();
    }
  });

  it("a frozen layer falls back to the tfjs path, which leaves that layer unchanged", async () => {
    const data = randomData(30, [784], 10, 81);
    const model = modelFor("mnist-2nn", [784], 10, 82);
    try {
      setTrainableLayers(model, ["fc2", "out"]);
      const plan = fastPathPlan(model);
      expect("unsupported" in plan && plan.unsupported).toMatch(/fc1 is frozen/);
      const fc1 = () => getFlatWeights(model).values.subarray(0, 784 * 200 + 200);
      const before = fc1().slice();
      const opts = { epochs: 1, batchSize: 10, learningRate: 0.1, seed: 83 };
      const { fast, tfjs } = await trainBothPaths(model, data, opts);
      expect(fast.result.path).toBe("tfjs");
      // bitEqual, not toEqual: a deep comparison of 199,210 elements takes seconds.
      expect(bitEqual(fast.weights, tfjs.weights)).toBe(true);
      expect(fast.result.loss).toBe(tfjs.result.loss);
      expect(bitEqual(fc1(), before)).toBe(true);
    } finally {
      model.dispose();
    }
  });

  it("a model with an Activation layer falls back and trains exactly as with the fast path switched off", async () => {
    const data = randomData(24, [6], 3, 91);
    const model = tanhActivationLayerModel();
    try {
      const opts = { epochs: 1, batchSize: 8, learningRate: 0.1, seed: 93 };
      const { fast, tfjs } = await trainBothPaths(model, data, opts);
      expect(fast.result.path).toBe("tfjs");
      expect(bitEqual(fast.weights, tfjs.weights)).toBe(true);
      expect({ ...fast.result, seconds: 0 }).toEqual({ ...tfjs.result, seconds: 0 });
    } finally {
      model.dispose();
    }
  });
});

/** Dense → Activation(tanh) → Dense softmax: a layer class the fast path does not take. */
function tanhActivationLayerModel(): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.dense({
        units: 5,
        inputShape: [6],
        kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
      }),
      tf.layers.activation({ activation: "tanh", name: "act" }),
      tf.layers.dense({
        units: 3,
        activation: "softmax",
        kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
      }),
    ],
  });
}
