import * as tf from "@tensorflow/tfjs";
import type { NativeAddon } from "../native/addon.js";
import { NATIVE_BACKEND, requireNativeAddon } from "./native.js";
import type { NativeBackend } from "./native-backend.js";

/** A gradient with its variable's name (tfjs's NamedTensor, which the package does not export). */
interface NamedGradient {
  name: string;
  tensor: tf.Tensor;
}

/**
 * SGD for the tfjs training path that updates a variable in place when the native backend owns its
 * array alone. tfjs's SGD computes add(mul(c, g), value) into two new model-sized arrays and swaps
 * the variable to the second; for the CNN that is 2 × 6.4 MB written per step, and a working set two
 * training processes no longer share in the L3 cache. The in-place step does the same float32
 * roundings (mul, then add; no fused multiply-add), so the weights are bit for bit tfjs's.
 *
 * A variable whose array might be seen by anyone else (shared with the caller's weights, read out
 * with dataSync, or sharing its data id, e.g. with FedProx's anchor clone) takes tfjs's own update,
 * which gives it a fresh array that later steps may then update in place.
 */
/** Updates done in place and by tfjs's own SGD by every InPlaceSgdOptimizer in this process. */
export const inPlaceSgdTotals = { inPlace: 0, stock: 0 };

export class InPlaceSgdOptimizer extends tf.SGDOptimizer {
  /** Updates done in place and by tfjs's own SGD (for tests and benchmarks). */
  readonly counts = { inPlace: 0, stock: 0 };

  constructor(
    learningRate: number,
    private readonly sgdStep: NativeAddon["sgdStepInPlace"],
  ) {
    super(learningRate);
  }

  override applyGradients(variableGradients: tf.NamedTensorMap | NamedGradient[]): void {
    const named = Array.isArray(variableGradients)
      ? variableGradients
      : Object.entries(variableGradients).map(([name, tensor]) => ({ name, tensor }));
    const stock: NamedGradient[] = [];
    const backend = tf.backend() as NativeBackend;
    const c = -this.learningRate;
    for (const { name, tensor: gradient } of named) {
      if (gradient == null) continue;
      const variable = tf.engine().registeredVariables[name];
      if (variable !== undefined && this.sgdStep !== undefined && ownsAlone(backend, variable, gradient)) {
        this.sgdStep(backend.floats(variable), backend.floats(gradient), c);
        this.counts.inPlace++;
        inPlaceSgdTotals.inPlace++;
      } else {
        stock.push({ name, tensor: gradient });
        this.counts.stock++;
        inPlaceSgdTotals.stock++;
      }
    }
    // tfjs's SGD for the rest; it also counts the iteration, so call it even when nothing is left.
    super.applyGradients(stock);
  }
}

function ownsAlone(backend: NativeBackend, variable: tf.Variable, gradient: tf.Tensor): boolean {
  if (variable.dtype !== "float32" || gradient.dtype !== "float32" || variable.size !== gradient.size)
    return false;
  const held = backend.data.get(variable.dataId);
  const grad = backend.data.get(gradient.dataId);
  const values = held.values as Float32Array;
  const gradValues = grad.values as Float32Array;
  return held.refCount === 1 && backend.pool.isExclusive(values) && gradValues.buffer !== values.buffer;
}

/**
 * The optimiser the trainer's tfjs path uses: the in-place SGD on the native backend when its addon
 * has the step (FEDSIM_INPLACE_SGD=0 turns it off), else tfjs's SGD.
 */
export function createSgdOptimizer(learningRate: number): tf.SGDOptimizer {
  if (tf.getBackend() !== NATIVE_BACKEND || process.env["FEDSIM_INPLACE_SGD"] === "0") {
    return tf.train.sgd(learningRate);
  }
  const step = requireNativeAddon().sgdStepInPlace;
  return step === undefined ? tf.train.sgd(learningRate) : new InPlaceSgdOptimizer(learningRate, step);
}
