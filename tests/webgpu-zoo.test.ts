/**
 * Every zoo model trains on the webgpu backend like on the pure-JS cpu backend: from the same start
 * weights, with the same seed and batches, a few SGD steps give the same batch losses and the same
 * weights within TOLERANCE (relative, per tensor). Reads go through the asynchronous paths the client
 * uses (trainLocal, evaluate, readFlatDelta), and tensors stay flat across rounds.
 * Without an adapter the comparisons do not run; "the webgpu backend is available" fails instead when
 * CI or FEDSIM_REQUIRE_WEBGPU=1 is set. On the software adapter every step is slow: steps stay few.
 */
import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { ModelWorkbench } from "../client/workbench.js";
import { ErrorCode } from "../common/errors.js";
import { getFlatWeights, readFlatWeights, setFlatWeights } from "../common/models/tf-weights.js";
import { buildModel, MODEL_NAMES, type ModelName } from "../common/models/zoo.js";
import type { ModelDescriptor } from "../common/protocol.js";
import { initBackend } from "../common/tf/backend.js";
import { evaluate, trainLocal } from "../common/train/trainer.js";
import type { FlatWeights } from "../common/weights.js";
import { tensorOffsets } from "../common/weights.js";
import { expectError } from "./helpers/expect-error.js";
import { randomData } from "./helpers/fast-path-compare.js";
import { relativeError } from "./helpers/kernel-compare.js";
import { expectWebGpuWhenRequired, webgpuStatus } from "./helpers/webgpu-required.js";

/**
 * Worst per-tensor relative error allowed between webgpu and cpu (max |Δ| / max |cpu| per tensor, and
 * over the batch losses): float32 sums in another order (GPU reductions, tiled matmuls) differ in the
 * last bits, and a few steps do not amplify that much. Mesa's software adapter stays below 1e-6.
 */
const TOLERANCE = 1e-5;

const SHAPES: Record<ModelName, number[]> = {
  "mnist-2nn": [28, 28, 1],
  "mnist-cnn": [28, 28, 1],
  "tiny-cnn": [28, 28, 1],
  "tiny-mlp": [28, 28, 1],
  logreg: [60],
};

const status = await webgpuStatus();

it("the webgpu backend is available when CI or FEDSIM_REQUIRE_WEBGPU=1 is set", () => {
  expectWebGpuWhenRequired(status);
});

function worstTensorError(actual: FlatWeights, expected: FlatWeights): number {
  const offsets = tensorOffsets(expected.specs);
  let worst = 0;
  for (let i = 0; i < expected.specs.length; i++) {
    const a = actual.values.subarray(offsets[i], offsets[i + 1]);
    const e = expected.values.subarray(offsets[i], offsets[i + 1]);
    // Biases start at zero; after a few steps they are small but not all zero.
    worst = Math.max(worst, relativeError(a, e, { allowZeroReference: true }));
  }
  return worst;
}

describe.runIf(status.available)("the model zoo on webgpu against cpu", () => {
  it.each(MODEL_NAMES)(
    "%s: same losses and weights within the tolerance",
    async (name) => {
      const shape = SHAPES[name];
      const data = randomData(6, shape, 10, 5);
      // The big CNN costs seconds per step on the pure-JS cpu backend: two steps prove the match.
      const opts = {
        epochs: 1,
        batchSize: 2,
        learningRate: 0.1,
        seed: 3,
        maxSteps: name === "mnist-cnn" ? 2 : 3,
      };

      await initBackend("cpu");
      const reference = buildModel(name, { inputShape: shape, numClasses: 10, seed: 1 });
      const start = getFlatWeights(reference);
      const cpuLosses: number[] = [];
      const cpu = await trainLocal(reference, data, { ...opts, onBatch: (_, loss) => cpuLosses.push(loss) });
      const cpuWeights = getFlatWeights(reference);
      reference.dispose();

      const info = await initBackend("webgpu");
      expect(info.adapter?.dawnBackend).toBeTypeOf("string");
      const model = buildModel(name, { inputShape: shape, numClasses: 10, seed: 1 });
      setFlatWeights(model, start);
      const tensors = tf.memory().numTensors;
      const gpuLosses: number[] = [];
      const gpu = await trainLocal(model, data, { ...opts, onBatch: (_, loss) => gpuLosses.push(loss) });
      expect(tf.memory().numTensors).toBe(tensors);
      const gpuWeights = await readFlatWeights(model);
      model.dispose();

      expect(gpu.path).toBe("tfjs");
      expect(gpu.steps).toBe(cpu.steps);
      expect(relativeError(Float32Array.from(gpuLosses), Float32Array.from(cpuLosses))).toBeLessThan(
        TOLERANCE,
      );
      expect(worstTensorError(gpuWeights, cpuWeights)).toBeLessThan(TOLERANCE);
      // The steps moved the weights by far more than the tolerance, so the match is not start == start.
      expect(relativeError(gpuWeights.values, start.values)).toBeGreaterThan(100 * TOLERANCE);
      // The big CNN's steps on the pure-JS cpu backend and the software adapter can take minutes on a
      // loaded machine; a test cut off midway would leave its backend to the next one.
    },
    900_000,
  );

  it("a client's rounds (fit, delta, evaluation) leave tf.memory() flat", async () => {
    await initBackend("webgpu");
    const data = randomData(24, [28, 28, 1], 10, 9);
    const workbench = new ModelWorkbench();
    const built = buildModel("tiny-cnn", { inputShape: [28, 28, 1], numClasses: 10, seed: 2 });
    const descriptor: ModelDescriptor = { topology: built.toJSON(null, false) as object, specs: [] };
    const weights = await readFlatWeights(built);
    built.dispose();
    const config = { epochs: 1, batchSize: 8, learningRate: 0.1 };
    const memory: { numTensors: number; numBytes: number }[] = [];
    const accuracies: number[] = [];
    let global = weights;
    for (let round = 0; round < 3; round++) {
      const fit = await workbench.fit(descriptor, data, { weights: global, config, seed: round });
      const next = global.values.map((v, i) => v + fit.delta[i]);
      global = { specs: global.specs, values: next };
      accuracies.push((await workbench.evaluate(descriptor, data, global)).accuracy);
      const { numTensors, numBytes } = tf.memory();
      memory.push({ numTensors, numBytes });
    }
    workbench.dispose();
    expect(memory[2]).toEqual(memory[1]);
    expect(memory[1]).toEqual(memory[0]);
    expect(accuracies.every((a) => a >= 0 && a <= 1)).toBe(true);
  });

  it("a synchronous weight read names the asynchronous one instead of failing inside tfjs", async () => {
    await initBackend("webgpu");
    const model = buildModel("logreg", { inputShape: [4], numClasses: 2, seed: 1 });
    try {
      expectError(() => getFlatWeights(model), ErrorCode.BACKEND_UNAVAILABLE, "asynchronous");
      const data = randomData(5, [4], 2, 1);
      const result = await evaluate(model, data, { batchSize: 2 });
      expect(result.numExamples).toBe(5);
      expect(Number.isFinite(result.loss)).toBe(true);
    } finally {
      model.dispose();
    }
  });
});
