/**
 * The training fast path: one SGD step of a planned model (fast-path-plan.ts: Conv2D, MaxPooling2D and
 * Dense layers ending in a softmax) as addon calls on preallocated Float32Arrays, with no tfjs op per step.
 * tfjs's autodiff allocates tensor objects for every op of a step; with a few dozen per step V8's
 * background GC then keeps part of a second core busy, which spoils running two training processes on two
 * cores, and at batch 10 the per-op bookkeeping costs more than the Dense layers' arithmetic.
 *
 * It computes what trainer.ts's tfjs path computes (same loss, same clipped-probability gradient, same SGD
 * and FedProx updates) on its own copies of the weights, and writes them back into the model's variables
 * when training ends.
 *
 * One trainer serves many fits of the same model (trainer.ts keeps one per model): a fresh multi-megabyte
 * array costs page faults when first written and, across a round of ten clients, the garbage collections
 * that external memory drives. So gradients, activations and anchors are allocated once, and the weight
 * copies come from the native backend's pool: the arrays handed to the variables at the end of one fit
 * return to the pool when the next fit's weights replace them, and the next fit takes them again.
 */
import * as tf from "@tensorflow/tfjs";
import { ErrorCode, FedsimError } from "../errors.js";
import { BINARY_OPS } from "../native/addon.js";
import { type NativeBackend, peekFloats } from "../tf/native-backend.js";
import { withBatch } from "./fast-path-geometry.js";
import {
  columnSums,
  crossEntropySoftmaxGradient,
  proximalSgdUpdate,
  sgdUpdate,
  softmaxRowsInPlace,
} from "./fast-path-math.js";
import type { ConvOp, FastOp, FastPathPlan, MaxPoolOp, ParameterOp } from "./fast-path-plan.js";

/** A Conv2D or Dense layer's weights (this fit's copies), their gradients and FedProx anchors. */
interface ParameterState {
  op: ParameterOp;
  kernel: Float32Array;
  bias: Float32Array;
  kernelGrad: Float32Array;
  biasGrad: Float32Array;
  /** The weights at the start of the fit, when mu > 0 (allocated on the first such fit). */
  kernelAnchor?: Float32Array;
  biasAnchor?: Float32Array;
}

/** Buffers and geometries sized for one batch size (at most two occur per call: full and last partial). */
interface BatchViews {
  /** Each op's output; the last is the softmax probabilities. */
  outputs: Float32Array[];
  /** dLoss/d(each op's output), masked in place into dLoss/d(pre-activation) for relu layers. */
  deltas: Float32Array[];
  probGradient: Float32Array;
  /** Each conv/pool op's addon geometry for this batch size (empty for Dense). */
  geometries: Int32Array[];
}

const NO_GEOMETRY = new Int32Array(0);

/**
 * Trains a planned model on its own copies of the weights. `begin` starts a fit from the variables'
 * values, `step` runs one SGD step, `finish` writes the weights back into the variables (new tensors: the
 * old arrays may be shared with a caller); `begin` may then start the next fit.
 */
export class FastPathTrainer {
  /** Per op; undefined for max pooling. */
  private readonly params: (ParameterState | undefined)[];
  /** Index of the first op with weights: no op before it needs a gradient. */
  private readonly firstTrained: number;
  private readonly outputs: Float32Array[];
  private readonly deltas: Float32Array[];
  private readonly probGradient: Float32Array;
  private readonly views = new Map<number, BatchViews>();
  private learningRate = 0;
  private mu = 0;
  /**
   * Whether Dense kernels take their SGD step inside the weight-gradient product (addon.gradientStep):
   * plain SGD only, since FedProx's step needs the gradient itself.
   */
  private foldDenseStep = false;
  private fitting = false;

  constructor(
    private readonly plan: FastPathPlan,
    private readonly maxBatchSize: number,
  ) {
    if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `maxBatchSize must be a positive integer, got ${maxBatchSize}`,
      );
    }
    const { ops } = plan;
    this.params = ops.map((op) => (op.kind === "maxPool" ? undefined : parameterState(op)));
    this.firstTrained = this.params.findIndex((state) => state !== undefined);
    this.outputs = ops.map((op) => new Float32Array(maxBatchSize * op.outSize));
    // Gradients flow back only as far as the first op with weights.
    this.deltas = ops.map(
      (op, l) => new Float32Array(l >= this.firstTrained ? maxBatchSize * op.outSize : 0),
    );
    this.probGradient = new Float32Array(maxBatchSize * plan.numClasses);
  }

  /** True while a fit runs (between begin and finish). */
  get busy(): boolean {
    return this.fitting;
  }

  /**
   * Whether this trainer can train `plan` at `batchSize`: the same layers (the same variables, shapes and
   * geometries) and batches no larger than its buffers.
   */
  fits(plan: FastPathPlan, batchSize: number): boolean {
    const mine = this.plan;
    if (batchSize > this.maxBatchSize || plan.addon !== mine.addon) return false;
    if (plan.inputSize !== mine.inputSize || plan.numClasses !== mine.numClasses) return false;
    if (plan.ops.length !== mine.ops.length) return false;
    return plan.ops.every((op, l) => sameOp(op, mine.ops[l]));
  }

  /** Starts a fit from the variables' current values. */
  begin(learningRate: number, mu: number): void {
    if (this.fitting) throw new FedsimError(ErrorCode.INTERNAL, "FastPathTrainer.begin during a fit");
    if (!Number.isFinite(learningRate) || learningRate <= 0) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `learningRate must be a positive number, got ${learningRate}`,
      );
    }
    if (!Number.isFinite(mu) || mu < 0) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `mu must be a number >= 0, got ${mu}`);
    }
    this.learningRate = learningRate;
    this.mu = mu;
    this.foldDenseStep = mu === 0 && this.plan.addon.gradientStep !== undefined;
    const pool = (tf.backend() as NativeBackend).pool;
    for (const state of this.params) {
      if (state === undefined) continue;
      // Copies: the variables' arrays may be shared with the caller (setFlatWeights shareValues).
      state.kernel = copyInto(pool.allocate(state.kernelGrad.length), peekFloats(state.op.kernel));
      state.bias = copyInto(pool.allocate(state.biasGrad.length), peekFloats(state.op.bias));
      if (mu > 0) {
        state.kernelAnchor = copyInto(
          state.kernelAnchor ?? new Float32Array(state.kernel.length),
          state.kernel,
        );
        state.biasAnchor = copyInto(state.biasAnchor ?? new Float32Array(state.bias.length), state.bias);
      }
    }
    this.fitting = true;
  }

  /**
   * One SGD step on `count` examples of `x` ([count, ...inputShape], NHWC for images) with one-hot labels
   * ([count, numClasses]). Returns the batch's probabilities before the update, as a view that the next
   * step overwrites.
   */
  step(x: Float32Array, oneHot: Float32Array, count: number): Float32Array {
    if (!this.fitting) throw new FedsimError(ErrorCode.INTERNAL, "FastPathTrainer.step outside a fit");
    const { ops, numClasses, inputSize } = this.plan;
    const views = this.viewsFor(count);
    if (x.length !== count * inputSize || oneHot.length !== count * numClasses) {
      throw new FedsimError(
        ErrorCode.BAD_SHAPE,
        `a batch of ${count} needs ${count * inputSize} inputs and ${count * numClasses} labels, got ${x.length} and ${oneHot.length}`,
      );
    }
    let input = x;
    for (let l = 0; l < ops.length; l++) {
      this.forward(ops[l], l, input, count, views);
      input = views.outputs[l];
    }
    const last = ops.length - 1;
    const probs = views.outputs[last];
    softmaxRowsInPlace(probs, count, numClasses);
    crossEntropySoftmaxGradient(probs, oneHot, count, numClasses, views.probGradient, views.deltas[last]);
    for (let l = last; l >= this.firstTrained; l--) {
      this.backward(ops[l], l, l === 0 ? x : views.outputs[l - 1], count, views);
      const state = this.params[l];
      // After backward: every gradient of this layer, and dx, used the weights before the update.
      if (state !== undefined) this.update(state);
    }
    return probs;
  }

  /** Ends the fit: hands the trained weights to the model's variables (no copy). */
  finish(): void {
    if (!this.fitting) return;
    this.fitting = false;
    tf.tidy(() => {
      for (const state of this.params) {
        if (state === undefined) continue;
        // The backend keeps the arrays it is given, and the next begin() takes new ones, so these are the
        // variables' alone; the pool takes them back when the variables' values are replaced.
        state.op.kernel.assign(tf.tensor(state.kernel, state.op.kernel.shape, "float32"));
        state.op.bias.assign(tf.tensor(state.bias, state.op.bias.shape, "float32"));
      }
    });
  }

  private forward(op: FastOp, l: number, input: Float32Array, count: number, views: BatchViews): void {
    const { addon } = this.plan;
    const out = views.outputs[l];
    if (op.kind === "maxPool") {
      addon.maxPool(input, out, views.geometries[l]);
      return;
    }
    const state = this.params[l] as ParameterState;
    if (op.kind === "conv2d") {
      addon.conv2d(input, state.kernel, state.bias, out, views.geometries[l], op.relu);
      return;
    }
    const relu = op.activation === "relu";
    const { inSize, outSize } = op;
    addon.matmul(input, state.kernel, out, 1, 1, count, outSize, inSize, false, false, state.bias, 1, relu);
  }

  /**
   * Op l's weight gradients from views.deltas[l] (dLoss/d its output), and dLoss/d its input into
   * views.deltas[l − 1] when an op before it has weights.
   */
  private backward(op: FastOp, l: number, input: Float32Array, count: number, views: BatchViews): void {
    const { addon } = this.plan;
    const delta = views.deltas[l];
    const needsInputGradient = l > this.firstTrained;
    const dx = needsInputGradient ? views.deltas[l - 1] : undefined;
    if (op.kind === "maxPool") {
      if (dx !== undefined) addon.maxPoolGrad(delta, input, dx, views.geometries[l]);
      return;
    }
    const relu = op.kind === "conv2d" ? op.relu : op.activation === "relu";
    // dLoss/dz = dLoss/dy where y = relu(z) > 0 (i.e. z > 0), as the ReLU gradient does.
    if (relu) addon.binary(BINARY_OPS.ReluGrad, delta, 1, views.outputs[l], 1, delta);
    const state = this.params[l] as ParameterState;
    if (op.kind === "conv2d") {
      const geometry = views.geometries[l];
      addon.conv2dBackpropFilter(input, delta, state.kernelGrad, geometry);
      // The bias gradient sums dz over every (example, row, column): N·OH·OW rows of OC channels.
      addon.sum(delta, state.biasGrad, 1, delta.length / op.outChannels, op.outChannels);
      if (dx !== undefined) addon.conv2dBackpropInput(delta, state.kernel, dx, geometry);
      return;
    }
    const { inSize, outSize } = op;
    // db = Σ_rows dz, dx = dz·Wᵀ, dW = inputᵀ·dz; dx before a folded step changes W.
    columnSums(delta, count, outSize, state.biasGrad);
    if (dx !== undefined) {
      addon.matmul(delta, state.kernel, dx, 1, 1, count, inSize, outSize, false, true, null, 1, false);
    }
    if (this.foldDenseStep && addon.gradientStep !== undefined) {
      // W ← W − lr·(inputᵀ·dz): the gradient is never stored, which saves two passes over a large kernel.
      addon.gradientStep(input, delta, state.kernel, inSize, outSize, count, true, false, -this.learningRate);
    } else {
      addon.matmul(input, delta, state.kernelGrad, 1, 1, inSize, outSize, count, true, false, null, 1, false);
    }
  }

  private update(state: ParameterState): void {
    const lr = this.learningRate;
    // The anchors outlive a FedProx fit; a later fit with mu 0 takes the plain (possibly folded) step.
    if (this.mu > 0 && state.kernelAnchor !== undefined && state.biasAnchor !== undefined) {
      proximalSgdUpdate(state.kernel, state.kernelGrad, state.kernelAnchor, lr, this.mu);
      proximalSgdUpdate(state.bias, state.biasGrad, state.biasAnchor, lr, this.mu);
      return;
    }
    // A folded Dense kernel took its step in backward().
    if (!(this.foldDenseStep && state.op.kind === "dense")) this.sgdStep(state.kernel, state.kernelGrad);
    this.sgdStep(state.bias, state.biasGrad);
  }

  /** w ← w − lr·g with the addon's vector pass when it has one (tfjs's float32 roundings first). */
  private sgdStep(w: Float32Array, g: Float32Array): void {
    const { addon } = this.plan;
    if (addon.sgdStepInPlace !== undefined) addon.sgdStepInPlace(w, g, -this.learningRate);
    else if (addon.addScaledInPlace !== undefined) addon.addScaledInPlace(w, g, -this.learningRate);
    else sgdUpdate(w, g, this.learningRate);
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
      const { ops, numClasses } = this.plan;
      const sized = (buffers: Float32Array[]) =>
        buffers.map((b, l) => (b.length === 0 ? b : b.subarray(0, count * ops[l].outSize)));
      views = {
        outputs: sized(this.outputs),
        deltas: sized(this.deltas),
        probGradient: this.probGradient.subarray(0, count * numClasses),
        geometries: ops.map((op) => (op.kind === "dense" ? NO_GEOMETRY : withBatch(op.geometry, count))),
      };
      this.views.set(count, views);
    }
    return views;
  }
}

/** A layer's gradient buffers; its weights are copied in by begin(). */
function parameterState(op: ParameterOp): ParameterState {
  const kernelLength = op.kernel.size;
  const biasLength = op.bias.size;
  return {
    op,
    kernel: new Float32Array(0),
    bias: new Float32Array(0),
    kernelGrad: new Float32Array(kernelLength),
    biasGrad: new Float32Array(biasLength),
  };
}

function copyInto(target: Float32Array, source: Float32Array): Float32Array {
  target.set(source);
  return target;
}

/** Same kind, same variables, same sizes and geometry: buffers and views built for one serve the other. */
function sameOp(a: FastOp, b: FastOp): boolean {
  if (a.kind !== b.kind || a.inSize !== b.inSize || a.outSize !== b.outSize) return false;
  if (a.kind === "dense" && b.kind === "dense") {
    return a.kernel === b.kernel && a.bias === b.bias && a.activation === b.activation;
  }
  if (a.kind === "conv2d" && b.kind === "conv2d") {
    if (a.kernel !== b.kernel || a.bias !== b.bias || a.relu !== b.relu) return false;
  }
  const [ga, gb] = [(a as ConvOp | MaxPoolOp).geometry, (b as ConvOp | MaxPoolOp).geometry];
  return ga.length === gb.length && ga.every((v, i) => v === gb[i]);
}
