import * as tf from "@tensorflow/tfjs";
import { ErrorCode, FedsimError } from "../errors.js";
import { trainableVariables } from "../models/tf-weights.js";
import { createRng, shuffleInPlace } from "../rng.js";
import { createSgdOptimizer } from "../tf/native-sgd.js";
import { readFloats, readsSynchronously } from "../tf/read.js";
import { BatchBuilder, scoreProbabilities, type TrainData, validateTrainData } from "./data.js";
import { type FastPathPlan, fastPathPlan, type TrainPath } from "./fast-path-plan.js";
import { FastPathTrainer } from "./fast-path-trainer.js";

export { type TrainData, validateTrainData } from "./data.js";
export { fastPathPlan, type TrainPath } from "./fast-path-plan.js";

export interface TrainOptions {
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** Seeds the minibatch order, so the same seed and start weights give the same result. */
  seed: number;
  /**
   * FedProx: adds (mu/2)·||w − w_global||² over the trainable weights, where w_global are the
   * weights at the start of this call. 0 or absent = plain FedAvg local training.
   */
  proximalMu?: number;
  optimizer?: "sgd";
  /** Stop after this many optimiser steps in total, even mid-epoch. */
  maxSteps?: number;
  /** Called after every step; step counts from 1, loss is the batch's cross-entropy. */
  onBatch?: (step: number, loss: number) => void;
  /**
   * Hand the event loop a turn at least this often (default 50 ms), so that a Socket.IO client
   * in the same process keeps answering heartbeats during long training.
   */
  yieldEveryMs?: number;
}

export interface TrainResult {
  /** Mean cross-entropy over the last (possibly partial) epoch, without the proximal term. */
  loss: number;
  /** Training accuracy over the same examples as `loss`. */
  accuracy: number;
  /** Distinct examples trained on: n once a full epoch ran (the FedAvg weight). */
  numExamples: number;
  steps: number;
  epochsCompleted: number;
  seconds: number;
  /** "fast-path" when the fast path trained (fast-path-trainer.ts), else "tfjs". */
  path: TrainPath;
}

export interface EvalResult {
  loss: number;
  accuracy: number;
  numExamples: number;
  /** Custom client logic's own evaluation metrics (common/client-app.ts). */
  metrics?: Record<string, number>;
}

/**
 * Local training with minibatch SGD on the model's softmax output. Only trainable layers change.
 * Leaves no tensors behind: the optimiser and the proximal anchor copies are disposed.
 *
 * Chains of Conv2D, MaxPooling2D and Dense layers on the `native` backend train through the fast path
 * (fast-path-plan.ts, fast-path-trainer.ts), which computes the same step without tfjs ops; everything
 * else, or FEDSIM_FAST_PATH=0, takes the tfjs path. `path` in the result says which ran.
 */
export async function trainLocal(
  model: tf.LayersModel,
  data: TrainData,
  opts: TrainOptions,
): Promise<TrainResult> {
  validateTrainOptions(opts);
  validateTrainData(model, data);
  if (data.n === 0) {
    throw new FedsimError(ErrorCode.BAD_DATA, "cannot train on an empty dataset (n = 0)");
  }
  const started = performance.now();
  const batchSize = Math.min(opts.batchSize, data.n);
  const variables = trainableVariables(model);
  if (variables.length === 0) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, "the model has no trainable layers");
  }
  const runner = createStepRunner(model, variables, data, opts, batchSize);
  try {
    const counts = await runEpochs(data, opts, batchSize, runner);
    return { ...counts, seconds: (performance.now() - started) / 1000, path: runner.path };
  } finally {
    runner.close();
  }
}

/** One optimiser step on a batch, returning the batch's probabilities as they were before the step. */
interface StepRunner {
  readonly path: TrainPath;
  /**
   * The returned array is read at once: a runner may overwrite it on the next step. A promise on
   * backends that read tensors only asynchronously (webgpu).
   */
  step(batch: Batch): Float32Array | Promise<Float32Array>;
  /** Releases the runner's resources and leaves the trained weights in the model. */
  close(): void;
}

interface Batch {
  x: Float32Array;
  oneHot: Float32Array;
  labels: Int32Array;
}

function createStepRunner(
  model: tf.LayersModel,
  variables: tf.Variable[],
  data: TrainData,
  opts: TrainOptions,
  batchSize: number,
): StepRunner {
  const mu = opts.proximalMu ?? 0;
  const plan = fastPathPlan(model, opts);
  if (!("unsupported" in plan)) {
    const trainer = fastPathTrainerFor(model, plan, batchSize);
    trainer.begin(opts.learningRate, mu);
    return {
      path: "fast-path",
      step: (batch) => trainer.step(batch.x, batch.oneHot, batch.labels.length),
      close: () => trainer.finish(),
    };
  }
  const optimizer = createSgdOptimizer(opts.learningRate);
  // The anchor for the proximal term: copies, because the variables change every step.
  const anchors = mu > 0 ? variables.map((v) => tf.keep(v.clone())) : [];
  return {
    path: "tfjs",
    step: (batch) => trainStep(model, optimizer, variables, anchors, mu, batch, data),
    close: () => {
      optimizer.dispose();
      for (const anchor of anchors) anchor.dispose();
    },
  };
}

/** One fast-path trainer per model, reused by its next fits (see FastPathTrainer on why). */
const fastPathTrainers = new WeakMap<tf.LayersModel, FastPathTrainer>();

function fastPathTrainerFor(model: tf.LayersModel, plan: FastPathPlan, batchSize: number): FastPathTrainer {
  const cached = fastPathTrainers.get(model);
  if (cached !== undefined && !cached.busy && cached.fits(plan, batchSize)) return cached;
  const trainer = new FastPathTrainer(plan, batchSize);
  // A second fit of the same model while one runs (not something fedsim does) gets its own trainer.
  if (cached === undefined || !cached.busy) fastPathTrainers.set(model, trainer);
  return trainer;
}

/** The epoch/batch loop shared by both paths: seeded shuffling, maxSteps, onBatch, yields and metrics. */
async function runEpochs(
  data: TrainData,
  opts: TrainOptions,
  batchSize: number,
  runner: StepRunner,
): Promise<Omit<TrainResult, "seconds" | "path">> {
  const maxSteps = opts.maxSteps ?? Number.POSITIVE_INFINITY;
  const yieldEveryMs = opts.yieldEveryMs ?? 50;
  const batches = new BatchBuilder(data, batchSize);
  const order = Int32Array.from({ length: data.n }, (_, i) => i);
  const rng = createRng(opts.seed);

  let steps = 0;
  let epochsCompleted = 0;
  let examplesSeen = 0;
  let epochLossSum = 0;
  let epochCorrect = 0;
  let epochExamples = 0;
  let lastYield = performance.now();
  for (let epoch = 0; epoch < opts.epochs && steps < maxSteps; epoch++) {
    shuffleInPlace(order, rng);
    epochLossSum = 0;
    epochCorrect = 0;
    epochExamples = 0;
    let start = 0;
    for (; start < data.n && steps < maxSteps; start += batchSize) {
      const count = Math.min(batchSize, data.n - start);
      const batch = batches.fill(order, start, count);
      const probs = await runner.step(batch);
      const { lossSum, correct } = scoreProbabilities(probs, batch.labels, data.numClasses);
      steps++;
      examplesSeen += count;
      epochLossSum += lossSum;
      epochCorrect += correct;
      epochExamples += count;
      opts.onBatch?.(steps, lossSum / count);
      if (performance.now() - lastYield >= yieldEveryMs) {
        await new Promise<void>((resolve) => setImmediate(resolve));
        lastYield = performance.now();
      }
    }
    if (start >= data.n) epochsCompleted++;
  }
  return {
    loss: epochLossSum / epochExamples,
    accuracy: epochCorrect / epochExamples,
    numExamples: Math.min(data.n, examplesSeen),
    steps,
    epochsCompleted,
  };
}

/**
 * One SGD step; returns the batch's predicted probabilities (read back, no tensor kept). Backends that
 * read only asynchronously get a promise, read after the step's update is queued.
 */
function trainStep(
  model: tf.LayersModel,
  optimizer: tf.Optimizer,
  variables: tf.Variable[],
  anchors: tf.Tensor[],
  mu: number,
  batch: Batch,
  data: TrainData,
): Float32Array | Promise<Float32Array> {
  const count = batch.labels.length;
  const sync = readsSynchronously();
  let probsRead = new Float32Array(0);
  let kept: tf.Tensor | undefined;
  tf.tidy(() => {
    const xs = tf.tensor(batch.x, [count, ...data.exampleShape], "float32");
    const ys = tf.tensor2d(batch.oneHot, [count, data.numClasses], "float32");
    optimizer.minimize(
      () => {
        const probs = model.apply(xs, { training: true }) as tf.Tensor;
        // Copied out (slice) because the backend may reuse or free its array after the step.
        if (sync) probsRead = (probs.dataSync() as Float32Array).slice();
        else kept = tf.keep(probs);
        const loss = crossEntropy(probs, ys);
        if (mu <= 0) return loss;
        return tf.add(loss, tf.mul(mu / 2, proximalSquaredNorm(variables, anchors)));
      },
      false,
      variables,
    );
  });
  return kept === undefined ? probsRead : readAndDispose(kept);
}

async function readAndDispose(tensor: tf.Tensor): Promise<Float32Array> {
  try {
    return await readFloats(tensor);
  } finally {
    tensor.dispose();
  }
}

/** Mean sparse categorical cross-entropy with probabilities clipped away from 0. */
function crossEntropy(probs: tf.Tensor, oneHot: tf.Tensor): tf.Scalar {
  const logProbs = tf.log(tf.clipByValue(probs, 1e-7, 1));
  return tf.neg(tf.mean(tf.sum(tf.mul(oneHot, logProbs), 1))) as tf.Scalar;
}

function proximalSquaredNorm(variables: tf.Variable[], anchors: tf.Tensor[]): tf.Scalar {
  const perTensor = variables.map((v, i) => tf.sum(tf.squaredDifference(v, anchors[i])));
  return tf.addN(perTensor) as tf.Scalar;
}

/** Batched loss and accuracy over the whole dataset; leaves no tensors behind. */
export async function evaluate(
  model: tf.LayersModel,
  data: TrainData,
  opts: { batchSize?: number } = {},
): Promise<EvalResult> {
  const batchSize = opts.batchSize ?? 500;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `batchSize must be a positive integer, got ${batchSize}`);
  }
  validateTrainData(model, data);
  // An empty partition scores zero with zero weight, so federated averages can skip it.
  if (data.n === 0) return { loss: 0, accuracy: 0, numExamples: 0 };
  const size = data.x.length / data.n;
  let lossSum = 0;
  let correct = 0;
  for (let start = 0; start < data.n; start += batchSize) {
    const count = Math.min(batchSize, data.n - start);
    // Rows are contiguous here, so a view is enough; it is read-only and disposed right away.
    const x = data.x.subarray(start * size, (start + count) * size);
    const out = tf.tidy(
      () => model.predict(tf.tensor(x, [count, ...data.exampleShape], "float32")) as tf.Tensor,
    );
    const probs = await readAndDispose(out);
    const score = scoreProbabilities(probs, data.y.subarray(start, start + count), data.numClasses);
    lossSum += score.lossSum;
    correct += score.correct;
  }
  return { loss: lossSum / data.n, accuracy: correct / data.n, numExamples: data.n };
}

function validateTrainOptions(opts: TrainOptions): void {
  const problems: string[] = [];
  if (!Number.isInteger(opts.epochs) || opts.epochs < 1) {
    problems.push(`epochs must be a positive integer, got ${opts.epochs}`);
  }
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) {
    problems.push(`batchSize must be a positive integer, got ${opts.batchSize}`);
  }
  if (!Number.isFinite(opts.learningRate) || opts.learningRate <= 0) {
    problems.push(`learningRate must be a positive number, got ${opts.learningRate}`);
  }
  if (!Number.isFinite(opts.seed)) problems.push(`seed must be a finite number, got ${opts.seed}`);
  const mu = opts.proximalMu;
  if (mu !== undefined && (!Number.isFinite(mu) || mu < 0)) {
    problems.push(`proximalMu must be a number >= 0, got ${mu}`);
  }
  if (opts.optimizer !== undefined && opts.optimizer !== "sgd") {
    problems.push(`optimizer must be "sgd", got ${JSON.stringify(opts.optimizer)}`);
  }
  const maxSteps = opts.maxSteps;
  if (maxSteps !== undefined && (!Number.isInteger(maxSteps) || maxSteps < 1)) {
    problems.push(`maxSteps must be a positive integer, got ${maxSteps}`);
  }
  const yieldEveryMs = opts.yieldEveryMs;
  if (yieldEveryMs !== undefined && (!Number.isFinite(yieldEveryMs) || yieldEveryMs < 0)) {
    problems.push(`yieldEveryMs must be a number >= 0, got ${yieldEveryMs}`);
  }
  if (problems.length > 0) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `invalid training options: ${problems.join("; ")}`,
      problems,
    );
  }
}
