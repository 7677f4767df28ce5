/**
 * Which models the training fast path (fast-path-trainer.ts) takes, as a list of ops: a single chain of
 * Conv2D, MaxPooling2D and Dense layers (Flatten and InputLayer are no-ops on the memory: NHWC flattens
 * row-major) ending in a Dense softmax, on the `native` backend with its addon and SGD. Anything else is
 * refused with a one-line reason, and the trainer takes the tfjs path. FEDSIM_FAST_PATH=0 (or the older
 * FEDSIM_DENSE_FAST_PATH=0) turns it off. See docs/NATIVE.md, "Fast path".
 */
import * as tf from "@tensorflow/tfjs";
import { setTrainableLayers } from "../models/tf-weights.js";
import type { NativeAddon } from "../native/addon.js";
import { NATIVE_BACKEND, requireNativeAddon } from "../tf/native.js";
import { convGeometry, type ImageShape, poolGeometry } from "./fast-path-geometry.js";

/** Which implementation ran a trainLocal call. */
export type TrainPath = "fast-path" | "tfjs";

export const FAST_PATH_ENV = "FEDSIM_FAST_PATH";
/** The switch's name before the fast path covered CNNs; still honoured. */
export const DENSE_FAST_PATH_ENV = "FEDSIM_DENSE_FAST_PATH";

interface OpBase {
  name: string;
  /** Values per example going in and out (an NHWC image counts h·w·c). */
  inSize: number;
  outSize: number;
}

export interface DenseOp extends OpBase {
  kind: "dense";
  activation: "relu" | "linear" | "softmax";
  /** [inSize, outSize]. */
  kernel: tf.Variable;
  bias: tf.Variable;
}

export interface ConvOp extends OpBase {
  kind: "conv2d";
  relu: boolean;
  /** [kh, kw, in, out] (HWIO). */
  kernel: tf.Variable;
  bias: tf.Variable;
  outChannels: number;
  /** The addon's conv geometry for a batch of one (fast-path-geometry.ts). */
  geometry: Int32Array;
}

export interface MaxPoolOp extends OpBase {
  kind: "maxPool";
  /** The addon's pooling geometry for a batch of one. */
  geometry: Int32Array;
}

export type FastOp = DenseOp | ConvOp | MaxPoolOp;
export type ParameterOp = DenseOp | ConvOp;

export interface FastPathPlan {
  addon: NativeAddon;
  /** In model order; the last one is the Dense softmax layer. */
  ops: readonly FastOp[];
  inputSize: number;
  numClasses: number;
}

/** What fastPathPlan needs of the training options. */
export interface FastPathOptions {
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

/** Why the fast path is switched off by the environment, or undefined. */
function switchedOff(): string | undefined {
  for (const name of [FAST_PATH_ENV, DENSE_FAST_PATH_ENV]) {
    if (process.env[name] === "0") return `disabled by ${name}=0`;
  }
  return undefined;
}

/**
 * The fast path's plan for `model`, or why it does not apply: it needs the `native` backend with its
 * addon, SGD, and a single chain of trainable float32 Conv2D (channelsLast, with bias, relu or linear),
 * MaxPooling2D and Dense (with bias, relu or linear) layers with no regulariser or constraint, where
 * Flatten/InputLayer may appear anywhere, ending in a Dense softmax.
 */
export function fastPathPlan(
  model: tf.LayersModel,
  opts: FastPathOptions = {},
): FastPathPlan | { unsupported: string } {
  const off = switchedOff();
  if (off !== undefined) return { unsupported: off };
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
  const inputShape = model.inputs[0].shape.slice(1);
  if (!inputShape.every((d) => typeof d === "number" && d > 0)) {
    return { unsupported: `the input shape [${inputShape.join(",")}] is not fully known` };
  }
  let shape = inputShape as number[];
  const ops: FastOp[] = [];
  for (const [index, layer] of model.layers.entries()) {
    const className = layer.getClassName();
    if (NO_OP_LAYERS.has(className)) {
      if (className === "Flatten") shape = [product(shape)];
      continue;
    }
    const isLast = index === model.layers.length - 1;
    const planned = planLayer(layer, className, shape, isLast);
    if (typeof planned === "string") return { unsupported: planned };
    const outShape = (layer.outputShape as (number | null)[]).slice(1);
    if (product(outShape as number[]) !== planned.op.outSize) {
      return {
        unsupported: `layer ${layer.name} outputs [${outShape.join(",")}], the plan gives ${planned.op.outSize} values`,
      };
    }
    ops.push(planned.op);
    shape = planned.outShape;
  }
  const last = ops[ops.length - 1];
  if (last === undefined || last.kind !== "dense" || last.activation !== "softmax") {
    return { unsupported: "the model does not end in a Dense softmax layer" };
  }
  return { addon, ops, inputSize: product(inputShape as number[]), numClasses: last.outSize };
}

/**
 * Which path trainLocal would take for `model` with `trainableLayers` (null: all) on the active backend,
 * and why not the fast path: for run logs and summaries. The layers' trainable flags are restored.
 */
export function trainingPathFor(
  model: tf.LayersModel,
  trainableLayers: string[] | null,
  opts: FastPathOptions = {},
): { path: TrainPath; reason?: string } {
  const flags = model.layers.map((layer) => layer.trainable);
  try {
    setTrainableLayers(model, trainableLayers);
    const plan = fastPathPlan(model, opts);
    return "unsupported" in plan ? { path: "tfjs", reason: plan.unsupported } : { path: "fast-path" };
  } finally {
    model.layers.forEach((layer, i) => {
      layer.trainable = flags[i];
    });
  }
}

function product(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
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

interface PlannedLayer {
  op: FastOp;
  /** Per-example output shape: [h, w, c] for images, [size] for vectors. */
  outShape: number[];
}

function planLayer(
  layer: tf.layers.Layer,
  className: string,
  inShape: number[],
  isLast: boolean,
): PlannedLayer | string {
  if (className === "Dense") return planDense(layer, inShape, isLast);
  if (isLast) return `the last layer ${layer.name} is a ${className}, not a Dense softmax`;
  if (className === "Conv2D") return planConv(layer, inShape);
  if (className === "MaxPooling2D") return planMaxPool(layer, inShape);
  return `layer ${layer.name} is a ${className}, which the fast path does not train (it takes Conv2D, MaxPooling2D, Flatten and Dense)`;
}

/** The kernel and bias of a trainable Conv2D/Dense layer without regularisers, or why not. */
function parameters(layer: tf.layers.Layer): { kernel: tf.Variable; bias: tf.Variable } | string {
  if (!layer.trainable) return `layer ${layer.name} is frozen (not trainable)`;
  const config = layer.getConfig();
  if (config["useBias"] !== true) return `layer ${layer.name} has no bias`;
  for (const key of UNSUPPORTED_CONFIG_KEYS) {
    if (config[key] !== null && config[key] !== undefined) return `layer ${layer.name} has a ${key}`;
  }
  const weights = layer.weights;
  if (weights.length !== 2 || layer.trainableWeights.length !== 2) {
    return `layer ${layer.name} has ${weights.length} weights (${layer.trainableWeights.length} trainable), not a kernel and a bias`;
  }
  const [kernel, bias] = weights.map((w) => w.read() as tf.Variable);
  if (kernel.dtype !== "float32" || bias.dtype !== "float32") return `layer ${layer.name} is not float32`;
  const outSize = kernel.shape[kernel.rank - 1];
  if (bias.rank !== 1 || bias.shape[0] !== outSize) {
    return `layer ${layer.name} has kernel [${kernel.shape.join(",")}] and bias [${bias.shape.join(",")}]`;
  }
  return { kernel, bias };
}

function planDense(layer: tf.layers.Layer, inShape: number[], isLast: boolean): PlannedLayer | string {
  const params = parameters(layer);
  if (typeof params === "string") return params;
  const activation = layer.getConfig()["activation"];
  if (isLast ? activation !== "softmax" : activation !== "relu" && activation !== "linear") {
    const wanted = isLast ? "softmax (output layer)" : "relu or linear (hidden layer)";
    return `layer ${layer.name} has activation ${String(activation)}, the fast path needs ${wanted}`;
  }
  if (inShape.length !== 1) return `layer ${layer.name} takes a rank-${inShape.length + 1} input, not rank 2`;
  const { kernel, bias } = params;
  const [inSize, outSize] = kernel.shape;
  if (kernel.rank !== 2 || inSize !== inShape[0]) {
    return `layer ${layer.name} has kernel [${kernel.shape.join(",")}] for ${inShape[0]} inputs`;
  }
  const op: DenseOp = {
    kind: "dense",
    name: layer.name,
    inSize,
    outSize,
    activation: activation as DenseOp["activation"],
    kernel,
    bias,
  };
  return { op, outShape: [outSize] };
}

/** A layer config's 2-d setting ([a, b] or a single number for both axes), or undefined when malformed. */
function pair(value: unknown): [number, number] | undefined {
  const list = typeof value === "number" ? [value, value] : value;
  if (!Array.isArray(list) || list.length !== 2 || !list.every((v) => Number.isInteger(v) && v >= 1)) {
    return undefined;
  }
  return [list[0], list[1]];
}

/** Why a Conv2D/MaxPooling2D config is not an NHWC image op with same/valid padding, or undefined. */
function imageOpProblem(
  layer: tf.layers.Layer,
  config: tf.serialization.ConfigDict,
  inShape: number[],
): string | undefined {
  if (config["dataFormat"] !== "channelsLast") {
    return `layer ${layer.name} has dataFormat ${String(config["dataFormat"])}, not channelsLast`;
  }
  if (config["padding"] !== "same" && config["padding"] !== "valid") {
    return `layer ${layer.name} has padding ${String(config["padding"])}, not same or valid`;
  }
  if (inShape.length !== 3) return `layer ${layer.name} takes a rank-${inShape.length + 1} input, not NHWC`;
  return undefined;
}

function planConv(layer: tf.layers.Layer, inShape: number[]): PlannedLayer | string {
  const params = parameters(layer);
  if (typeof params === "string") return params;
  const config = layer.getConfig();
  const activation = config["activation"];
  if (activation !== "relu" && activation !== "linear") {
    return `layer ${layer.name} has activation ${String(activation)}, the fast path needs relu or linear`;
  }
  const problem = imageOpProblem(layer, config, inShape);
  if (problem !== undefined) return problem;
  const strides = pair(config["strides"]);
  const dilations = pair(config["dilationRate"]);
  if (strides === undefined || dilations === undefined) {
    return `layer ${layer.name} has strides ${JSON.stringify(config["strides"])} and dilationRate ${JSON.stringify(config["dilationRate"])}`;
  }
  if (Math.max(...strides) > 1 && Math.max(...dilations) > 1) {
    // tfjs's conv2d rejects this too, so such a model cannot even predict.
    return `layer ${layer.name} has both strides and dilations above 1`;
  }
  const { kernel, bias } = params;
  if (kernel.rank !== 4 || kernel.shape[2] !== inShape[2]) {
    return `layer ${layer.name} has kernel [${kernel.shape.join(",")}] for ${inShape[2]} input channels`;
  }
  const planned = convGeometry(inShape as ImageShape, {
    filterShape: kernel.shape as [number, number, number, number],
    strides,
    dilations,
    padding: config["padding"] as "same" | "valid",
  });
  if (typeof planned === "string") return `layer ${layer.name}: ${planned}`;
  const op: ConvOp = {
    kind: "conv2d",
    name: layer.name,
    inSize: product(inShape),
    outSize: product(planned.outShape),
    relu: activation === "relu",
    kernel,
    bias,
    outChannels: planned.outShape[2],
    geometry: planned.geometry,
  };
  return { op, outShape: planned.outShape };
}

function planMaxPool(layer: tf.layers.Layer, inShape: number[]): PlannedLayer | string {
  const config = layer.getConfig();
  const problem = imageOpProblem(layer, config, inShape);
  if (problem !== undefined) return problem;
  const poolSize = pair(config["poolSize"]);
  const strides = pair(config["strides"] ?? config["poolSize"]);
  if (poolSize === undefined || strides === undefined) {
    return `layer ${layer.name} has poolSize ${JSON.stringify(config["poolSize"])} and strides ${JSON.stringify(config["strides"])}`;
  }
  const planned = poolGeometry(inShape as ImageShape, {
    poolSize,
    strides,
    padding: config["padding"] as "same" | "valid",
  });
  if (typeof planned === "string") return `layer ${layer.name}: ${planned}`;
  const op: MaxPoolOp = {
    kind: "maxPool",
    name: layer.name,
    inSize: product(inShape),
    outSize: product(planned.outShape),
    geometry: planned.geometry,
  };
  return { op, outShape: planned.outShape };
}
