import type * as tf from "@tensorflow/tfjs";
import { ErrorCode, FedsimError } from "../errors.js";
import { tensorSize } from "../weights.js";

/**
 * Examples as flat typed arrays: row i of `x` is `x[i*size .. (i+1)*size)` with
 * size = prod(exampleShape). Structurally compatible with the data module's Dataset.
 */
export interface TrainData {
  x: Float32Array;
  y: Int32Array;
  n: number;
  exampleShape: number[];
  numClasses: number;
}

/** Checks that the arrays hold exactly n examples with valid labels and fit the model. */
export function validateTrainData(model: tf.LayersModel, data: TrainData): void {
  const { x, y, n, exampleShape, numClasses } = data;
  if (!Number.isInteger(n) || n < 0) {
    throw new FedsimError(ErrorCode.BAD_DATA, `n must be a non-negative integer, got ${n}`);
  }
  const exampleSize = tensorSize(exampleShape);
  if (x.length !== n * exampleSize) {
    throw new FedsimError(
      ErrorCode.BAD_DATA,
      `x holds ${x.length} values, expected n (${n}) x ${exampleSize} (example shape [${exampleShape.join(",")}])`,
    );
  }
  if (y.length !== n) {
    throw new FedsimError(ErrorCode.BAD_DATA, `y holds ${y.length} labels, expected n = ${n}`);
  }
  for (let i = 0; i < n; i++) {
    const label = y[i];
    if (label < 0 || label >= numClasses) {
      throw new FedsimError(ErrorCode.BAD_DATA, `label y[${i}] = ${label} is outside [0, ${numClasses})`);
    }
  }
  const modelInput = model.inputs[0].shape.slice(1);
  if (
    modelInput.length !== exampleShape.length ||
    !modelInput.every((d, i) => d === null || d === exampleShape[i])
  ) {
    throw new FedsimError(
      ErrorCode.BAD_SHAPE,
      `examples have shape [${exampleShape.join(",")}], the model expects [${modelInput.join(",")}]`,
    );
  }
  const modelOutput = model.outputs[0].shape;
  const outputClasses = modelOutput[modelOutput.length - 1];
  if (outputClasses !== numClasses) {
    throw new FedsimError(
      ErrorCode.BAD_SHAPE,
      `data has ${numClasses} classes, the model outputs ${outputClasses}`,
    );
  }
}

/**
 * The data as the model sees it: a node's own files need not hold every class, and labels index
 * the model's outputs, so data with fewer classes than the model has trains over the model's.
 */
export function withModelClasses(model: tf.LayersModel, data: TrainData): TrainData {
  const shape = model.outputs[0].shape;
  const outputClasses = shape[shape.length - 1];
  return typeof outputClasses === "number" && data.numClasses < outputClasses
    ? { ...data, numClasses: outputClasses }
    : data;
}

/**
 * Copies chosen rows into reusable buffers, so a batch tensor is built straight from a
 * Float32Array: slicing a few rows out of a big tensor copies the whole source on wasm.
 */
export class BatchBuilder {
  readonly exampleSize: number;
  private readonly xBuffer: Float32Array;
  private readonly oneHotBuffer: Float32Array;
  private readonly labelBuffer: Int32Array;

  constructor(
    private readonly data: TrainData,
    readonly maxBatchSize: number,
  ) {
    this.exampleSize = tensorSize(data.exampleShape);
    this.xBuffer = new Float32Array(maxBatchSize * this.exampleSize);
    this.oneHotBuffer = new Float32Array(maxBatchSize * data.numClasses);
    this.labelBuffer = new Int32Array(maxBatchSize);
  }

  /**
   * Fills the buffers with rows `order[start .. start+count)` and returns views of them. The views
   * are overwritten by the next call: build tensors from them and dispose those before then (the
   * cpu backend keeps the array it is given rather than copying it).
   */
  fill(
    order: Int32Array,
    start: number,
    count: number,
  ): { x: Float32Array; oneHot: Float32Array; labels: Int32Array } {
    const { x, y, numClasses } = this.data;
    const size = this.exampleSize;
    const oneHot = this.oneHotBuffer.subarray(0, count * numClasses);
    oneHot.fill(0);
    for (let r = 0; r < count; r++) {
      const row = order[start + r];
      this.xBuffer.set(x.subarray(row * size, (row + 1) * size), r * size);
      const label = y[row];
      this.labelBuffer[r] = label;
      oneHot[r * numClasses + label] = 1;
    }
    return {
      x: this.xBuffer.subarray(0, count * size),
      oneHot,
      labels: this.labelBuffer.subarray(0, count),
    };
  }
}

/**
 * Sum over rows of −log(p[label]) with p clipped to [1e-7, 1], and the number of rows whose
 * arg-max is the label. Computed in JS from the read-back probabilities.
 */
export function scoreProbabilities(
  probs: Float32Array,
  labels: ArrayLike<number>,
  numClasses: number,
): { lossSum: number; correct: number } {
  let lossSum = 0;
  let correct = 0;
  for (let r = 0; r < labels.length; r++) {
    const base = r * numClasses;
    let best = 0;
    for (let c = 1; c < numClasses; c++) if (probs[base + c] > probs[base + best]) best = c;
    const label = labels[r];
    if (best === label) correct++;
    const p = probs[base + label];
    lossSum -= Math.log(Math.min(1, Math.max(1e-7, p)));
  }
  return { lossSum, correct };
}
