/**
 * Shared by tests/dense-fast-path.test.ts and tests/cnn-fast-path.test.ts: train one start state through
 * the fast path and through the tfjs path (the switch off), and compare weights, metrics and counts.
 */
import type * as tf from "@tensorflow/tfjs";
import { expect } from "vitest";
import { getFlatWeights, setFlatWeights } from "../../common/models/tf-weights.js";
import { createRng } from "../../common/rng.js";
import { DENSE_FAST_PATH_ENV, FAST_PATH_ENV } from "../../common/train/fast-path-plan.js";
import {
  type TrainData,
  type TrainOptions,
  type TrainResult,
  trainLocal,
} from "../../common/train/trainer.js";
import { type TensorSpec, tensorOffsets, tensorSize } from "../../common/weights.js";
import { relativeError } from "./kernel-compare.js";

const SWITCHES = [FAST_PATH_ENV, DENSE_FAST_PATH_ENV] as const;
const saved = SWITCHES.map((name) => process.env[name]);

/** Puts both fast-path switches back as they were when the test file loaded (call in afterEach). */
export function restoreFastPathSwitches(): void {
  SWITCHES.forEach((name, i) => {
    const value = saved[i];
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  });
}

/** Turns the fast path on (both switches unset) or off (FEDSIM_FAST_PATH=0). */
export function setFastPath(on: boolean): void {
  for (const name of SWITCHES) delete process.env[name];
  if (!on) process.env[FAST_PATH_ENV] = "0";
}

export function randomData(n: number, exampleShape: number[], numClasses: number, seed: number): TrainData {
  const rng = createRng(seed);
  const size = exampleShape.reduce((a, b) => a * b, 1);
  const x = Float32Array.from({ length: n * size }, () => rng.next());
  const y = Int32Array.from({ length: n }, () => rng.int(numClasses));
  return { x, y, n, exampleShape, numClasses };
}

export interface Run {
  result: TrainResult;
  weights: Float32Array;
  specs: TensorSpec[];
  batchLosses: number[];
}

export async function train(
  model: tf.LayersModel,
  data: TrainData,
  opts: TrainOptions,
  fastPath: boolean,
): Promise<Run> {
  setFastPath(fastPath);
  const batchLosses: number[] = [];
  const result = await trainLocal(model, data, { ...opts, onBatch: (_, loss) => batchLosses.push(loss) });
  const { values, specs } = getFlatWeights(model);
  return { result, weights: values, specs, batchLosses };
}

/** Trains copies of one start state on both paths; the model is left with the tfjs path's weights. */
export async function trainBothPaths(
  model: tf.LayersModel,
  data: TrainData,
  opts: TrainOptions,
): Promise<{ fast: Run; tfjs: Run; start: Float32Array }> {
  const start = getFlatWeights(model);
  const fast = await train(model, data, opts, true);
  setFlatWeights(model, start);
  const tfjs = await train(model, data, opts, false);
  return { fast, tfjs, start: start.values };
}

/** max over tensors of max |a − b| / max |b| within that tensor. */
export function worstTensorError(actual: Float32Array, expected: Float32Array, specs: TensorSpec[]): number {
  const offsets = tensorOffsets(specs);
  let worst = 0;
  specs.forEach((spec, i) => {
    const end = offsets[i] + tensorSize(spec.shape);
    const error = relativeError(actual.subarray(offsets[i], end), expected.subarray(offsets[i], end));
    worst = Math.max(worst, error);
  });
  return worst;
}

/**
 * The fast path ran and gave the tfjs path's training: every weight tensor within `tolerance` of its
 * largest weight (max |a − b| / max |b| per tensor), the same loss, accuracy, per-batch losses and counts.
 */
export function expectSameTraining(fast: Run, tfjs: Run, start: Float32Array, tolerance = 1e-4): void {
  expect(fast.result.path).toBe("fast-path");
  expect(tfjs.result.path).toBe("tfjs");
  // Training moved the weights, so agreement is not two copies of the start state.
  expect(relativeError(tfjs.weights, start)).toBeGreaterThan(1e-3);
  expect(worstTensorError(fast.weights, tfjs.weights, tfjs.specs)).toBeLessThanOrEqual(tolerance);
  expect(Math.abs(fast.result.loss - tfjs.result.loss)).toBeLessThanOrEqual(1e-4);
  expect(Math.abs(fast.result.accuracy - tfjs.result.accuracy)).toBeLessThanOrEqual(1e-4);
  for (const key of ["steps", "epochsCompleted", "numExamples"] as const) {
    expect(fast.result[key]).toBe(tfjs.result[key]);
  }
  expect(fast.batchLosses.length).toBe(tfjs.batchLosses.length);
  fast.batchLosses.forEach((loss, i) => {
    expect(Math.abs(loss - tfjs.batchLosses[i])).toBeLessThanOrEqual(1e-4);
  });
}
