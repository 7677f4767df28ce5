/**
 * A training step for models made only of Dense layers (the FedAvg 2NN, tiny-mlp, logreg) that bypasses
 * TensorFlow.js's autodiff on the `native` backend: one addon sgemm per matmul and a few loops over
 * Float32Arrays, no tfjs op per step. At batch 10 the 2NN's arithmetic is a minority of a tfjs step; the
 * rest is per-op bookkeeping (tape, kernel lookup, scopes, tensor objects) that this path does not pay.
 *
 * It computes what trainer.ts's tfjs path computes (same loss, same clipped-probability gradient, same SGD
 * and FedProx updates) on its own copies of the weights, and writes them back into the model's variables
 * when training ends. Anything it does not cover is refused with a reason, and the trainer then takes the
 * tfjs path. FEDSIM_DENSE_FAST_PATH=0 turns it off. See docs/NATIVE.md, "Dense fast path".
 */
import * as tf from "@tensorflow/tfjs";
import { ErrorCode, FedsimError } from "../errors.js";
import { NATIVE_BACKEND, requireNativeAddon } from "../tf/native.js";
import type { NativeAddon } from "../tf/native-addon.js";
import {
  columnSums,
  crossEntropySoftmaxGradient,
  proximalSgdUpdate,
  reluBackwardInPlace,
  sgdUpdate,
  softmaxRowsInPlace,
} from "./dense-math.js";

/** Which implementation ran a trainLocal call. */
export type TrainPath = "dense-native" | "tfjs";

export const DENSE_FAST_PATH_ENV = "FEDSIM_DENSE_FAST_PATH";

export interface DenseLayerPlan {
  name: string;
  inSize: number;
  outSize: number;
  activation: "relu" | "linear" | "softmax";
  kernel: tf.Variable;
  bias: tf.Variable;
}

export interface DensePlan {
  addon: NativeAddon;
  /** In model order; the last one is the softmax layer. */
  layers: readonly DenseLayerPlan[];
  inputSize: number;
  numClasses: number;
}

/** What denseFastPathPlan needs of the training options. */
export interface DenseFastPathOptions {
  optimizer?: "sgd";
  proximalMu?: number;
}

const NO_OP_LAYERS = new Set(["Flatten", "InputLayer"]);
const UNSUPPORTED_CONFIG_KEYS = [
  "kernelRegularizer",
  "biasRegularizer",
  "activityRegularizer",
  "kernelConstraint",
  "biasConstraint",
] as const;

/**
 * The fast path's plan for `model`, or why it does not apply: it needs the `native` backend with its
 * addon, and a single chain of an optional Flatten/InputLayer followed by trainable float32 Dense layers
 * with biases, no regularisers or constraints, relu/linear hidden activations and a softmax output.
 */
export function denseFastPathPlan(
  model: tf.LayersModel,
  opts: DenseFastPathOptions = {},
): DensePlan | { unsupported: string } {
  if (process.env[DENSE_FAST_PATH_ENV] === "0") {
    return { unsupported: `disabled by ${DENSE_FAST_PATH_ENV}=0` };
  }
  if (tf.getBackend() !== NATIVE_BACKEND) {
    return { unsupported: `the active backend is ${tf.getBackend()}, not ${NATIVE_BACKEND}` };
  }
  let addon: NativeAddon;
  try {
    addon = requireNativeAddon();
  } catch (err) {
    return { unsupported: (err as Error).message };
  }
  if ((opts.optimizer ?? "sgd") !== "sgd") return { unsupported: `optimizer ${opts.optimizer} is not sgd` };
  const chain = chainProblem(model);
  if (chain !== undefined) return { unsupported: chain };
  const layers: DenseLayerPlan[] = [];
  for (const [index, layer] of model.layers.entries()) {
    const className = layer.getClassName();
    if (NO_OP_LAYERS.has(className)) {
      if (layers.length > 0) return { unsupported: `${className} layer ${layer.name} follows a Dense layer` };
      continue;
    }
    if (className !== "Dense") return { unsupported: `layer ${layer.name} is a ${className}, not Dense` };
    const isLast = index === model.layers.length - 1;
    const planned = planDense(layer, isLast);
    if (typeof planned === "string") return { unsupported: planned };
    const previous = layers[layers.length - 1];
    if (previous !== undefined && previous.outSize !== planned.inSize) {
      return {
        unsupported: `layer ${layer.name} takes ${planned.inSize} inputs, ${previous.name} gives ${previous.outSize}`,
      };
    }
    layers.push(planned);
  }
  const first = layers[0];
  const last = layers[layers.length - 1];
  if (first === undefined || last === undefined) return { unsupported: "the model has no Dense layer" };
  const inputShape = model.inputs[0].shape.slice(1);
  const inputSize = inputShape.reduce<number>((a, b) => a * (b ?? Number.NaN), 1);
  if (inputSize !== first.inSize) {
    return {
      unsupported: `input shape [${inputShape.join(",")}] does not flatten to ${first.inSize} values`,
    };
  }
  return { addon, layers, inputSize, numClasses: last.outSize };
}

/** Why the model is not one chain layer → layer (single input and output), or undefined when it is. */
function chainProblem(model: tf.LayersModel): string | undefined {
  if (model.inputs.length !== 1 || model.outputs.length !== 1)
    return "the model has several inputs or outputs";
  const layers = model.layers.filter((layer) => layer.getClassName() !== "InputLayer");
  try {
    let expected: tf.SymbolicTensor = model.inputs[0];
    for (const layer of layers) {
      if (layer.inboundNodes.length !== 1 || layer.input !== expected) {
        return `layer ${layer.name} is not fed by the layer before it alone`;
      }
      expected = layer.output as tf.SymbolicTensor;
    }
    if (expected !== model.outputs[0]) return "the model's output is not its last layer's";
  } catch (err) {
    // layer.input/output throw for layers with several inbound nodes (shared layers).
    return `the model is not a simple chain: ${(err as Error).message}`;
  }
  return undefined;
}

/** The Dense layer's plan, or why it is not one the fast path trains. */
function planDense(layer: tf.layers.Layer, isLast: boolean): DenseLayerPlan | string {
  if (!layer.trainable) return `layer ${layer.name} is frozen (not trainable)`;
  const config = layer.getConfig();
  if (config["useBias"] !== true) return `layer ${layer.name} has no bias`;
  for (const key of UNSUPPORTED_CONFIG_KEYS) {
    if (config[key] !== null && config[key] !== undefined) return `layer ${layer.name} has a ${key}`;
  }
  const activation = config["activation"];
  if (isLast ? activation !== "softmax" : activation !== "relu" && activation !== "linear") {
    const wanted = isLast ? "softmax (output layer)" : "relu or linear (hidden layer)";
    return `layer ${layer.name} has activation ${String(activation)}, the fast path needs ${wanted}`;
  }
  const inputRank = (layer.input as tf.SymbolicTensor).shape.length;
  if (inputRank !== 2) return `layer ${layer.name} takes a rank-${inputRank} input, not rank 2`;
  const weights = layer.weights;
  if (weights.length !== 2 || layer.trainableWeights.length !== 2) {
    return `layer ${layer.name} has ${weights.length} weights (${layer.trainableWeights.length} trainable), not a kernel and a bias`;
  }
  const [kernel, bias] = weights.map((w) => w.read() as tf.Variable);
  if (kernel.dtype !== "float32" || bias.dtype !== "float32") return `layer ${layer.name} is not float32`;
  const [inSize, outSize] = kernel.shape;
  if (kernel.rank !== 2 || bias.rank !== 1 || bias.shape[0] !== outSize) {
    return `layer ${layer.name} has kernel [${kernel.shape.join(",")}] and bias [${bias.shape.join(",")}]`;
  }
  return {
    name: layer.name,
    inSize,
    outSize,
    activation: activation as DenseLayerPlan["activation"],
    kernel,
    bias,
  };
}

/** Buffers sized for one batch size (at most two occur per call: the full and the last partial batch). */
interface BatchViews {
  /** Layer outputs; the last is the softmax probabilities. */
  outputs: Float32Array[];
  /** dLoss/d(pre-activation) of each layer. */
  deltas: Float32Array[];
  probGradient: Float32Array;
}

/**
 * Trains a planned model on its own copies of the weights. `step` runs one SGD step; `close` writes the
 * weights back into the model's variables (new tensors: the old arrays may be shared with a caller).
 */
export class DenseTrainer {
  private readonly weights: Float32Array[];
  private readonly biases: Float32Array[];
  private readonly kernelAnchors: Float32Array[];
  private readonly biasAnchors: Float32Array[];
  private readonly kernelGrads: Float32Array[];
  private readonly biasGrads: Float32Array[];
  private readonly outputs: Float32Array[];
  private readonly deltas: Float32Array[];
  private readonly probGradient: Float32Array;
  private readonly views = new Map<number, BatchViews>();
  private closed = false;

  constructor(
    private readonly plan: DensePlan,
    private readonly maxBatchSize: number,
    private readonly learningRate: number,
    private readonly mu: number,
  ) {
    if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `maxBatchSize must be a positive integer, got ${maxBatchSize}`,
      );
    }
    if (!Number.isFinite(learningRate) || learningRate <= 0) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `learningRate must be a positive number, got ${learningRate}`,
      );
    }
    if (!Number.isFinite(mu) || mu < 0) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `mu must be a number >= 0, got ${mu}`);
    }
    const { layers } = plan;
    // Copies: the variables' arrays may be shared with the caller's weights (setFlatWeights shareValues).
    this.weights = layers.map((l) => (l.kernel.dataSync() as Float32Array).slice());
    this.biases = layers.map((l) => (l.bias.dataSync() as Float32Array).slice());
    this.kernelAnchors = mu > 0 ? this.weights.map((w) => w.slice()) : [];
    this.biasAnchors = mu > 0 ? this.biases.map((b) => b.slice()) : [];
    this.kernelGrads = layers.map((l) => new Float32Array(l.inSize * l.outSize));
    this.biasGrads = layers.map((l) => new Float32Array(l.outSize));
    this.outputs = layers.map((l) => new Float32Array(maxBatchSize * l.outSize));
    this.deltas = layers.map((l) => new Float32Array(maxBatchSize * l.outSize));
    this.probGradient = new Float32Array(maxBatchSize * plan.numClasses);
  }

  /**
   * One SGD step on `count` rows of `x` ([count, inputSize]) with one-hot labels ([count, numClasses]).
   * Returns the batch's probabilities before the update, as a view that the next step overwrites.
   */
  step(x: Float32Array, oneHot: Float32Array, count: number): Float32Array {
    if (this.closed) throw new FedsimError(ErrorCode.INTERNAL, "DenseTrainer.step after close");
    const { addon, layers, numClasses } = this.plan;
    const views = this.viewsFor(count);
    const { outputs, deltas } = views;
    let input = x;
    for (let l = 0; l < layers.length; l++) {
      const layer = layers[l];
      const relu = layer.activation === "relu";
      addon.matmul(
        input,
        this.weights[l],
        outputs[l],
        1,
        1,
        count,
        layer.outSize,
        layer.inSize,
        false,
        false,
        this.biases[l],
        1,
        relu,
      );
      input = outputs[l];
    }
    const probs = outputs[layers.length - 1];
    softmaxRowsInPlace(probs, count, numClasses);
    crossEntropySoftmaxGradient(
      probs,
      oneHot,
      count,
      numClasses,
      views.probGradient,
      deltas[layers.length - 1],
    );
    for (let l = layers.length - 1; l >= 0; l--) {
      const layer = layers[l];
      const layerInput = l === 0 ? x : outputs[l - 1];
      // dW = inputᵀ·dz, db = Σ_rows dz, and (before W changes) dx = dz·Wᵀ masked by the previous relu.
      addon.matmul(
        layerInput,
        deltas[l],
        this.kernelGrads[l],
        1,
        1,
        layer.inSize,
        layer.outSize,
        count,
        true,
        false,
        null,
        1,
        false,
      );
      columnSums(deltas[l], count, layer.outSize, this.biasGrads[l]);
      if (l > 0) {
        addon.matmul(
          deltas[l],
          this.weights[l],
          deltas[l - 1],
          1,
          1,
          count,
          layer.inSize,
          layer.outSize,
          false,
          true,
          null,
          1,
          false,
        );
        if (layers[l - 1].activation === "relu")
          reluBackwardInPlace(deltas[l - 1], outputs[l - 1], count * layer.inSize);
      }
      this.update(l);
    }
    return probs;
  }

  /** Writes the trained weights into the model's variables; the trainer is unusable afterwards. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    tf.tidy(() => {
      this.plan.layers.forEach((layer, l) => {
        // The backend keeps the arrays it is given: ours are not touched again, so no copy is needed.
        layer.kernel.assign(tf.tensor(this.weights[l], layer.kernel.shape, "float32"));
        layer.bias.assign(tf.tensor(this.biases[l], layer.bias.shape, "float32"));
      });
    });
  }

  private update(l: number): void {
    const lr = this.learningRate;
    if (this.mu > 0) {
      proximalSgdUpdate(this.weights[l], this.kernelGrads[l], this.kernelAnchors[l], lr, this.mu);
      proximalSgdUpdate(this.biases[l], this.biasGrads[l], this.biasAnchors[l], lr, this.mu);
      return;
    }
    // The kernel is most of the parameters: the addon's vector pass beats a JS loop when it has one.
    if (this.plan.addon.addScaledInPlace !== undefined) {
      this.plan.addon.addScaledInPlace(this.weights[l], this.kernelGrads[l], -lr);
    } else sgdUpdate(this.weights[l], this.kernelGrads[l], lr);
    sgdUpdate(this.biases[l], this.biasGrads[l], lr);
  }

  private viewsFor(count: number): BatchViews {
    if (!Number.isInteger(count) || count < 1 || count > this.maxBatchSize) {
      throw new FedsimError(
        ErrorCode.BAD_SHAPE,
        `count must be 1 to ${this.maxBatchSize} rows, got ${count}`,
      );
    }
    let views = this.views.get(count);
    if (views === undefined) {
      const sized = (buffers: Float32Array[]) =>
        buffers.map((b, l) => b.subarray(0, count * this.plan.layers[l].outSize));
      views = {
        outputs: sized(this.outputs),
        deltas: sized(this.deltas),
        probGradient: this.probGradient.subarray(0, count * this.plan.numClasses),
      };
      this.views.set(count, views);
    }
    return views;
  }
}
