/**
 * The fast path (common/train/fast-path-*.ts) on CNNs against trainLocal's tfjs path (the switch off):
 * same weights per tensor within 1e-4, metrics and counts for tiny-cnn, mnist-cnn and custom chains with
 * valid padding, stride-2 convs and 3x3/stride-2 pools; reasoned refusals for what it does not cover.
 * The comparisons need the native addon (describe.runIf); they cannot pass vacuously in CI: "the native
 * addon is available" fails when CI or FEDSIM_REQUIRE_NATIVE=1 is set and the addon does not load.
 */
import * as tf from "@tensorflow/tfjs";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { getFlatWeights, setFlatWeights, setTrainableLayers } from "../common/models/tf-weights.js";
import { buildModel } from "../common/models/zoo.js";
import { initBackend } from "../common/tf/backend.js";
import { nativeStatus } from "../common/tf/native.js";
import type { NativeBackend } from "../common/tf/native-backend.js";
import { DENSE_FAST_PATH_ENV, FAST_PATH_ENV, trainingPathFor } from "../common/train/fast-path-plan.js";
import { fastPathPlan, type TrainOptions, trainLocal } from "../common/train/trainer.js";
import {
  expectSameTraining,
  randomData,
  restoreFastPathSwitches,
  setFastPath,
  train,
  trainBothPaths,
  worstTensorError,
} from "./helpers/fast-path-compare.js";
import { relativeError } from "./helpers/kernel-compare.js";
import { expectNativeWhenRequired } from "./helpers/native-required.js";

const status = nativeStatus();

afterEach(restoreFastPathSwitches);

const seeded = (seed: number) => tf.initializers.glorotUniform({ seed });

/** A chain of small layers after the given input shape, ending in a Dense softmax over 3 classes. */
function chain(inputShape: number[], layers: tf.layers.Layer[]): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.inputLayer({ inputShape }),
      ...layers,
      tf.layers.flatten(),
      tf.layers.dense({ name: "out", units: 3, activation: "softmax", kernelInitializer: seeded(99) }),
    ],
  });
}

type ConvArgs = Parameters<typeof tf.layers.conv2d>[0];

/** A seeded 3x3 relu conv of 4 filters with a non-zero bias, unless `args` say otherwise. */
function conv(name: string, args: Partial<ConvArgs>): tf.layers.Layer {
  return tf.layers.conv2d({
    name,
    filters: 4,
    kernelSize: 3,
    activation: "relu",
    kernelInitializer: seeded(name.length * 7 + 1),
    biasInitializer: tf.initializers.randomUniform({ minval: -0.05, maxval: 0.1, seed: 5 }),
    ...args,
  });
}

it("the native addon is available when CI or FEDSIM_REQUIRE_NATIVE=1 is set", () => {
  expectNativeWhenRequired(status.available, status.reason);
});

describe.runIf(status.available)("the fast path on CNNs on the native backend", () => {
  beforeAll(async () => {
    await initBackend("native");
  });

  it("tiny-cnn trains like the tfjs path, with a partial last batch, with and without FedProx", async () => {
    const data = randomData(27, [8, 8, 1], 3, 1);
    const model = buildModel("tiny-cnn", { inputShape: [8, 8, 1], numClasses: 3, seed: 2 });
    try {
      const start = getFlatWeights(model);
      for (const proximalMu of [0, 0.5]) {
        setFlatWeights(model, start);
        const opts = { epochs: 2, batchSize: 5, learningRate: 0.2, seed: 3, proximalMu };
        const { fast, tfjs } = await trainBothPaths(model, data, opts);
        expectSameTraining(fast, tfjs, start.values);
        expect(fast.result.steps).toBe(12);
        expect(fast.result.epochsCompleted).toBe(2);
      }
    } finally {
      model.dispose();
    }
  });

  it("custom chains (valid padding, stride-2 conv, 3x3/2 and same-padded pools, a pool first) match", async () => {
    const models: Array<[string, number[], () => tf.LayersModel]> = [
      [
        "valid conv, stride-2 linear conv, 3x3/2 pool, hidden Dense",
        [11, 11, 2],
        () =>
          tf.sequential({
            layers: [
              conv("c1", { inputShape: [11, 11, 2], padding: "valid" }),
              conv("c22", { filters: 5, strides: 2, padding: "same", activation: "linear" }),
              tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: "valid" }),
              tf.layers.flatten(),
              tf.layers.dense({ units: 6, activation: "relu", kernelInitializer: seeded(41) }),
              tf.layers.dense({ units: 3, activation: "softmax", kernelInitializer: seeded(42) }),
            ],
          }),
      ],
      [
        "5x5/2 valid conv, same-padded 3x3/2 pool, 1x3 conv",
        [13, 12, 3],
        () =>
          chain(
            [13, 12, 3],
            [
              conv("c1", { kernelSize: 5, strides: 2, padding: "valid" }),
              tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: "same" }),
              conv("c333", { kernelSize: [1, 3], padding: "same" }),
            ],
          ),
      ],
      [
        "a pool before the first conv",
        [10, 10, 2],
        () => chain([10, 10, 2], [tf.layers.maxPooling2d({ poolSize: 2 }), conv("c1", { padding: "same" })]),
      ],
    ];
    for (const [what, shape, build] of models) {
      const model = build();
      try {
        const data = randomData(23, shape, 3, 11);
        const opts = { epochs: 3, batchSize: 6, learningRate: 0.3, seed: 12, proximalMu: 0.1 };
        const { fast, tfjs, start } = await trainBothPaths(model, data, opts);
        expect(fast.result.path, what).toBe("fast-path");
        expectSameTraining(fast, tfjs, start);
        expect(fast.result.steps).toBe(12);
      } finally {
        model.dispose();
      }
    }
  });

  it("mnist-cnn on MNIST-shaped input matches for 3 steps of batch 10", async () => {
    const data = randomData(30, [28, 28, 1], 10, 21);
    const model = buildModel("mnist-cnn", { inputShape: [28, 28, 1], numClasses: 10, seed: 22 });
    try {
      const opts = { epochs: 1, batchSize: 10, learningRate: 0.1, seed: 23 };
      const { fast, tfjs, start } = await trainBothPaths(model, data, opts);
      expectSameTraining(fast, tfjs, start);
      expect(fast.result.steps).toBe(3);
    } finally {
      model.dispose();
    }
  });

  it("a dilated conv (tfjs cannot differentiate it) trains like the same conv with a zero-spread kernel", async () => {
    // One step: the gradient of a 3x3 dilation-2 kernel is the 5x5 kernel's gradient at every other tap.
    const data = randomData(8, [9, 9, 2], 3, 31);
    const dilated = chain([9, 9, 2], [conv("c1", { dilationRate: 2, padding: "same" })]);
    const spread = chain([9, 9, 2], [conv("c1", { kernelSize: 5, padding: "same" })]);
    try {
      const start = getFlatWeights(dilated);
      const kernel3 = start.values.subarray(0, 3 * 3 * 2 * 4);
      const kernel5 = new Float32Array(5 * 5 * 2 * 4);
      const tap = (k: number, y: number, x: number) => (y * k + x) * 2 * 4;
      for (let y = 0; y < 3; y++) {
        for (let x = 0; x < 3; x++) {
          kernel5.set(kernel3.subarray(tap(3, y, x), tap(3, y, x) + 8), tap(5, 2 * y, 2 * x));
        }
      }
      const rest = start.values.subarray(kernel3.length);
      setFlatWeights(spread, {
        specs: getFlatWeights(spread).specs,
        values: Float32Array.from([...kernel5, ...rest]),
      });
      const opts: TrainOptions = { epochs: 1, batchSize: 8, learningRate: 0.5, seed: 32 };
      const fast = await train(dilated, data, opts, true);
      const reference = await train(spread, data, opts, false);
      expect(fast.result.path).toBe("fast-path");
      expect(reference.result.path).toBe("tfjs");
      expect(Math.abs(fast.result.loss - reference.result.loss)).toBeLessThanOrEqual(1e-5);
      const trained5 = reference.weights.subarray(0, kernel5.length);
      const taps = new Float32Array(kernel3.length);
      for (let y = 0; y < 3; y++) {
        for (let x = 0; x < 3; x++) {
          taps.set(trained5.subarray(tap(5, 2 * y, 2 * x), tap(5, 2 * y, 2 * x) + 8), tap(3, y, x));
        }
      }
      const expected = Float32Array.from([...taps, ...reference.weights.subarray(kernel5.length)]);
      expect(relativeError(fast.weights, start.values)).toBeGreaterThan(1e-3);
      expect(worstTensorError(fast.weights, expected, fast.specs)).toBeLessThanOrEqual(1e-4);
    } finally {
      dilated.dispose();
      spread.dispose();
    }
  });

  it("refuses what it does not cover with a reason, and training then takes the tfjs path", async () => {
    const frozen = buildModel("tiny-cnn", { inputShape: [8, 8, 1], numClasses: 3, seed: 41 });
    setTrainableLayers(frozen, ["conv2", "out"]);
    const refusals: Array<[tf.LayersModel, RegExp]> = [
      [
        chain(
          [8, 8, 1],
          [conv("c1", { inputShape: [8, 8, 1] }), tf.layers.averagePooling2d({ poolSize: 2 })],
        ),
        /is a AveragePooling2D, which the fast path does not train/,
      ],
      [frozen, /layer conv1 is frozen/],
      [chain([8, 8, 1], [conv("nobias", { useBias: false })]), /layer nobias has no bias/],
      [
        chain([8, 8, 1], [conv("act", { activation: "tanh" })]),
        /layer act has activation tanh, the fast path needs relu or linear/,
      ],
      [
        chain([8, 8, 1], [conv("c1", {}), tf.layers.dropout({ rate: 0.5 })]),
        /is a Dropout, which the fast path does not train/,
      ],
      [
        chain([8, 8, 1], [conv("c1", {}), tf.layers.batchNormalization()]),
        /is a BatchNormalization, which the fast path does not train/,
      ],
    ];
    const data = randomData(10, [8, 8, 1], 3, 42);
    for (const [model, reason] of refusals) {
      try {
        setFastPath(true);
        const plan = fastPathPlan(model);
        expect("unsupported" in plan && plan.unsupported).toMatch(reason);
        const result = await trainLocal(model, data, {
          epochs: 1,
          batchSize: 5,
          learningRate: 0.1,
          seed: 43,
        });
        expect(result.path).toBe("tfjs");
      } finally {
        model.dispose();
      }
    }
  });

  it("FEDSIM_FAST_PATH=0 and the older FEDSIM_DENSE_FAST_PATH=0 both turn it off", async () => {
    const model = buildModel("tiny-cnn", { inputShape: [8, 8, 1], numClasses: 3, seed: 51 });
    const data = randomData(10, [8, 8, 1], 3, 52);
    try {
      setFastPath(true);
      expect("unsupported" in fastPathPlan(model)).toBe(false);
      for (const name of [FAST_PATH_ENV, DENSE_FAST_PATH_ENV]) {
        setFastPath(true);
        process.env[name] = "0";
        const plan = fastPathPlan(model);
        expect("unsupported" in plan && plan.unsupported).toBe(`disabled by ${name}=0`);
        const result = await trainLocal(model, data, {
          epochs: 1,
          batchSize: 5,
          learningRate: 0.1,
          seed: 53,
        });
        expect(result.path).toBe("tfjs");
      }
    } finally {
      model.dispose();
    }
  });

  it("runs no tfjs kernel and makes no tensor during its steps (the tfjs path runs many)", async () => {
    const data = randomData(40, [8, 8, 1], 3, 71);
    const model = buildModel("tiny-cnn", { inputShape: [8, 8, 1], numClasses: 3, seed: 72 });
    const engine = tf.engine();
    const runKernel = vi.spyOn(engine, "runKernel");
    const makeTensor = vi.spyOn(engine, "makeTensor");
    try {
      const callsBetweenSteps = async (fastPath: boolean): Promise<number> => {
        setFastPath(fastPath);
        const atStep: number[] = [];
        await trainLocal(model, data, {
          epochs: 1,
          batchSize: 8,
          learningRate: 0.1,
          seed: 73,
          onBatch: () => atStep.push(runKernel.mock.calls.length + makeTensor.mock.calls.length),
        });
        expect(atStep.length).toBe(5);
        return atStep[atStep.length - 1] - atStep[0];
      };
      expect(await callsBetweenSteps(true)).toBe(0);
      expect(await callsBetweenSteps(false)).toBeGreaterThan(40);
    } finally {
      runKernel.mockRestore();
      makeTensor.mockRestore();
      model.dispose();
    }
  });

  it("leaves no tensors behind, and the variables (so predict) hold the trained weights", async () => {
    const data = randomData(25, [8, 8, 1], 3, 61);
    const model = buildModel("tiny-cnn", { inputShape: [8, 8, 1], numClasses: 3, seed: 62 });
    const predict = () =>
      tf.tidy(
        () => (model.predict(tf.tensor(data.x, [25, 8, 8, 1])) as tf.Tensor).dataSync() as Float32Array,
      );
    try {
      const start = getFlatWeights(model);
      const before = predict();
      const tensors = tf.memory().numTensors;
      const opts = { epochs: 2, batchSize: 10, learningRate: 0.3, seed: 63 };
      const fast = await train(model, data, opts, true);
      expect(fast.result.path).toBe("fast-path");
      expect(tf.memory().numTensors).toBe(tensors);
      const afterFast = predict();
      expect(relativeError(afterFast, before)).toBeGreaterThan(1e-3);
      setFlatWeights(model, start);
      await train(model, data, opts, false);
      expect(relativeError(afterFast, predict())).toBeLessThanOrEqual(1e-4);
      // A second fit continues from the written-back weights, not from a stale copy.
      setFlatWeights(model, { specs: start.specs, values: fast.weights });
      const second = await train(model, data, opts, true);
      expect(relativeError(second.weights, fast.weights)).toBeGreaterThan(1e-4);
      expect(tf.memory().numTensors).toBe(tensors);
    } finally {
      model.dispose();
    }
  });
  it("one trainer serves consecutive fits: weights recycle through the pool, results equal a fresh model's", async () => {
    // A Dense kernel of 256·32 floats is above the pool's size threshold, so its copies are pooled.
    const build = () =>
      tf.sequential({
        layers: [
          tf.layers.inputLayer({ inputShape: [8, 8, 1] }),
          conv("c1", { padding: "same" }),
          tf.layers.flatten(),
          tf.layers.dense({ name: "wide", units: 32, activation: "relu", kernelInitializer: seeded(3) }),
          tf.layers.dense({ name: "out", units: 3, activation: "softmax", kernelInitializer: seeded(99) }),
        ],
      });
    const data = randomData(24, [8, 8, 1], 3, 21);
    const reused = build();
    const fresh = build();
    const pool = (tf.backend() as NativeBackend).pool;
    try {
      const start = getFlatWeights(reused);
      const other = { specs: start.specs, values: start.values.map((v, i) => v + ((i % 7) - 3) * 1e-3) };
      const first: TrainOptions = { epochs: 1, batchSize: 8, learningRate: 0.05, seed: 1 };
      // As the workbench does: view the received weights, train, read out, then the next fit's weights.
      setFlatWeights(reused, start, { shareValues: true });
      expect((await trainLocal(reused, data, first)).path).toBe("fast-path");
      getFlatWeights(reused);
      const allocatedAfterFirst = pool.stats.allocated;
      const reusedAfterFirst = pool.stats.reused;
      const second: TrainOptions = { epochs: 2, batchSize: 6, learningRate: 0.1, seed: 2, proximalMu: 0.01 };
      setFlatWeights(reused, other, { shareValues: true });
      await trainLocal(reused, data, second);
      expect(pool.stats.allocated).toBe(allocatedAfterFirst);
      expect(pool.stats.reused).toBeGreaterThan(reusedAfterFirst);

      setFlatWeights(fresh, other);
      await trainLocal(fresh, data, second);
      const [a, b] = [getFlatWeights(reused).values, getFlatWeights(fresh).values];
      expect(relativeError(a, other.values)).toBeGreaterThan(1e-3);
      expect(Array.from(a)).toEqual(Array.from(b));
      // A larger batch than the trainer was built for gets a new trainer, and trains the same way too.
      const third: TrainOptions = { epochs: 1, batchSize: 12, learningRate: 0.05, seed: 3 };
      await trainLocal(reused, data, third);
      await trainLocal(fresh, data, third);
      expect(Array.from(getFlatWeights(reused).values)).toEqual(Array.from(getFlatWeights(fresh).values));
    } finally {
      reused.dispose();
      fresh.dispose();
    }
  });
  it("trainingPathFor says which path a run's clients take, and leaves the trainable flags as they were", () => {
    const model = buildModel("mnist-cnn", { inputShape: [28, 28, 1], numClasses: 10, seed: 4 });
    try {
      model.getLayer("conv1").trainable = false;
      expect(trainingPathFor(model, null)).toEqual({ path: "fast-path" });
      const fineTuning = trainingPathFor(model, ["fc1", "out"]);
      expect(fineTuning.path).toBe("tfjs");
      expect(fineTuning.reason).toMatch(/layer conv1 is frozen/);
      expect(model.layers.map((l) => l.trainable)).toEqual(model.layers.map((l) => l.name !== "conv1"));
    } finally {
      model.dispose();
    }
  });
});
