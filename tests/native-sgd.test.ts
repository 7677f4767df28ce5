/**
 * The in-place SGD step of the tfjs training path (common/tf/native-sgd.ts): it must give tfjs's SGD
 * weights bit for bit, and must never write an array anyone else may hold. Native-only tests run when
 * the addon is built; with CI or FEDSIM_REQUIRE_NATIVE=1 a missing addon fails the first test.
 */
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getFlatWeights, setFlatWeights } from "../common/models/tf-weights.js";
import { buildModel } from "../common/models/zoo.js";
import { createRng } from "../common/rng.js";
import { initBackend } from "../common/tf/backend.js";
import { nativeStatus, requireNativeAddon } from "../common/tf/native.js";
import { createSgdOptimizer, InPlaceSgdOptimizer, inPlaceSgdTotals } from "../common/tf/native-sgd.js";
import { type TrainData, trainLocal } from "../common/train/trainer.js";
import { bitEqual } from "./helpers/fuzz.js";
import { expectNativeWhenRequired } from "./helpers/native-required.js";

const available = nativeStatus().available && requireNativeAddon().sgdStepInPlace !== undefined;

it("the in-place SGD step is available when CI or FEDSIM_REQUIRE_NATIVE=1 is set", () => {
  expectNativeWhenRequired(available, `${nativeStatus().reason} (or the addon predates sgdStepInPlace)`);
});

function randomFloats(n: number, seed: number, scale = 1): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: n }, () => (rng.next() - 0.5) * scale);
}

function mnistLike(n: number, seed: number): TrainData {
  const rng = createRng(seed);
  return {
    x: Float32Array.from({ length: n * 784 }, () => rng.next()),
    y: Int32Array.from({ length: n }, () => rng.int(10)),
    n,
    exampleShape: [28, 28, 1],
    numClasses: 10,
  };
}

describe.runIf(available)("in-place SGD on the native backend", () => {
  beforeAll(async () => {
    await initBackend("native");
  });
  afterAll(async () => {
    await initBackend("wasm");
  });

  it("updates a variable the backend owns alone in place, with tfjs's float32 roundings", () => {
    const n = 10_000;
    const start = randomFloats(n, 1);
    const gradient = randomFloats(n, 2, 10);
    // A kernel output is a pool-issued array; the variable takes its data id, the tensor lets go.
    const seed = tf.relu(tf.tensor1d(start));
    const variable = tf.variable(seed, true, "inplace-a");
    seed.dispose();
    const before = (variable.dataSync() as Float32Array).slice();
    // dataSync pins the array (it may be held forever); one stock step gives the variable a fresh one.
    const optimizer = createSgdOptimizer(0.05) as InPlaceSgdOptimizer;
    expect(optimizer).toBeInstanceOf(InPlaceSgdOptimizer);
    const g = tf.tensor1d(gradient);
    optimizer.applyGradients({ [variable.name]: g });
    expect(optimizer.counts).toEqual({ inPlace: 0, stock: 1 });
    const afterStock = tf.tidy(() => {
      const stepped = tf.add(tf.mul(tf.scalar(-0.05), g), tf.tensor1d(before));
      return (stepped.dataSync() as Float32Array).slice();
    });
    const held = (
      tf.backend() as unknown as { data: { get(id: object): { values: Float32Array } } }
    ).data.get(variable.dataId).values;
    optimizer.applyGradients({ [variable.name]: g });
    expect(optimizer.counts).toEqual({ inPlace: 1, stock: 1 });
    // Same array, new values: the update happened in place.
    expect(
      (tf.backend() as unknown as { data: { get(id: object): { values: Float32Array } } }).data.get(
        variable.dataId,
      ).values,
    ).toBe(held);
    const c = Math.fround(-0.05);
    const expected = afterStock.map((w, i) => Math.fround(Math.fround(c * gradient[i]) + w));
    expect(bitEqual(variable.dataSync() as Float32Array, expected)).toBe(true);
    expect(
      bitEqual(
        before,
        start.map((v) => Math.max(v, 0)),
      ),
    ).toBe(true);
    tf.dispose([g, variable]);
    optimizer.dispose();
  });

  it("never writes an array that was read out, or a data id another tensor shares", () => {
    const optimizer = createSgdOptimizer(0.1) as InPlaceSgdOptimizer;
    const seed = tf.relu(tf.tensor1d(randomFloats(8192, 3)));
    const variable = tf.variable(seed, true, "inplace-b");
    seed.dispose();
    const g = tf.tensor1d(randomFloats(8192, 4));
    optimizer.applyGradients({ [variable.name]: g }); // the kernel's own array: updated in place
    expect(optimizer.counts.inPlace).toBe(1);
    const read = variable.dataSync() as Float32Array; // read out: pinned from here on
    const copy = read.slice();
    optimizer.applyGradients({ [variable.name]: g });
    expect(optimizer.counts).toEqual({ inPlace: 1, stock: 1 });
    expect(bitEqual(read, copy)).toBe(true);
    // The stock step gave the variable a fresh array; a clone shares its data id (refCount 2), as
    // FedProx's anchor does, so the next step must not write it either.
    const clone = variable.clone();
    const cloneBefore = (clone.dataSync() as Float32Array).slice();
    optimizer.applyGradients({ [variable.name]: g });
    expect(optimizer.counts).toEqual({ inPlace: 1, stock: 2 });
    expect(bitEqual(clone.dataSync() as Float32Array, cloneBefore)).toBe(true);
    tf.dispose([g, variable, clone]);
    optimizer.dispose();
  });

  it("a CNN trains to tfjs's SGD weights bit for bit, in place, also with FedProx and shared weights", async () => {
    const data = mnistLike(40, 5);
    const start = getFlatWeights(
      buildModel("mnist-cnn", { inputShape: [28, 28, 1], numClasses: 10, seed: 8 }),
    );
    const train = async (inPlace: boolean, proximalMu: number) => {
      const previous = process.env["FEDSIM_INPLACE_SGD"];
      const previousFastPath = process.env["FEDSIM_FAST_PATH"];
      process.env["FEDSIM_INPLACE_SGD"] = inPlace ? "1" : "0";
      // The tfjs path's optimiser is under test: the fast path (which takes this CNN) is switched off.
      process.env["FEDSIM_FAST_PATH"] = "0";
      const model = buildModel("mnist-cnn", { inputShape: [28, 28, 1], numClasses: 10, seed: 9 });
      try {
        setFlatWeights(model, start, { shareValues: true });
        const tensorsBefore = tf.memory().numTensors;
        await trainLocal(model, data, { epochs: 1, batchSize: 10, learningRate: 0.05, seed: 3, proximalMu });
        expect(tf.memory().numTensors).toBe(tensorsBefore);
        return getFlatWeights(model).values;
      } finally {
        model.dispose();
        if (previous === undefined) delete process.env["FEDSIM_INPLACE_SGD"];
        else process.env["FEDSIM_INPLACE_SGD"] = previous;
        if (previousFastPath === undefined) delete process.env["FEDSIM_FAST_PATH"];
        else process.env["FEDSIM_FAST_PATH"] = previousFastPath;
      }
    };
    const pristine = start.values.slice();
    for (const mu of [0, 0.1]) {
      const before = inPlaceSgdTotals.inPlace;
      const stock = await train(false, mu);
      expect(inPlaceSgdTotals.inPlace).toBe(before);
      const inPlace = await train(true, mu);
      // The big kernels (conv2, fc1, out) go in place after the first step; small arrays are not pooled.
      expect(inPlaceSgdTotals.inPlace).toBeGreaterThan(before);
      expect(bitEqual(stock, pristine)).toBe(false);
      expect(bitEqual(inPlace, stock)).toBe(true);
    }
    // The weights the models viewed were never written.
    expect(bitEqual(start.values, pristine)).toBe(true);
  });
});

const hasGradientStep = nativeStatus().available && requireNativeAddon().gradientStep !== undefined;

it("the folded Dense step (gradientStep) is available when CI or FEDSIM_REQUIRE_NATIVE=1 is set", () => {
  expectNativeWhenRequired(hasGradientStep, `${nativeStatus().reason} (or the addon predates gradientStep)`);
});

describe.runIf(hasGradientStep)("gradientStep: an SGD step folded into the weight-gradient product", () => {
  /** w + c·(xᵀ·dz) in float64, rounded once: what the step computes up to float32 roundings. */
  function reference(
    x: Float32Array,
    dz: Float32Array,
    w: Float32Array,
    rows: number,
    inSize: number,
    c: number,
  ) {
    const outSize = w.length / inSize;
    const out = new Float32Array(w.length);
    for (let i = 0; i < inSize; i++) {
      for (let j = 0; j < outSize; j++) {
        let sum = 0;
        for (let r = 0; r < rows; r++) sum += x[r * inSize + i] * dz[r * outSize + j];
        out[i * outSize + j] = w[i * outSize + j] + c * sum;
      }
    }
    return out;
  }

  // A small layer (dnnl_sgemm) and fc1 of mnist-cnn at batch 10 (the cached matmul primitive).
  for (const [rows, inSize, outSize] of [
    [5, 12, 7],
    [10, 3136, 512],
  ]) {
    it(`w ← w − lr·(xᵀ·dz) for a ${inSize}x${outSize} kernel and ${rows} rows`, () => {
      const addon = requireNativeAddon();
      const x = randomFloats(rows * inSize, 3);
      const dz = randomFloats(rows * outSize, 4);
      const w = randomFloats(inSize * outSize, 5);
      const expected = reference(x, dz, w, rows, inSize, -0.05);
      addon.gradientStep?.(x, dz, w, inSize, outSize, rows, true, false, -0.05);
      let worst = 0;
      for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(w[i] - expected[i]));
      expect(worst).toBeLessThan(1e-5);
    });
  }

  it("refuses sizes that do not match and a w that overlaps an operand", () => {
    const addon = requireNativeAddon();
    const buffer = new Float32Array(64);
    expect(() =>
      addon.gradientStep?.(
        buffer.subarray(0, 6),
        buffer.subarray(0, 6),
        new Float32Array(5),
        2,
        3,
        3,
        true,
        false,
        -1,
      ),
    ).toThrow(/sizes/);
    expect(() =>
      addon.gradientStep?.(
        buffer.subarray(0, 6),
        new Float32Array(6),
        buffer.subarray(4, 8),
        2,
        2,
        3,
        true,
        false,
        -1,
      ),
    ).toThrow(/overlap/);
  });
});
