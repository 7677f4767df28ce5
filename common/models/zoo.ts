import * as tf from "@tensorflow/tfjs";
import { ErrorCode, FedsimError } from "../errors.js";
import { registeredModel, registeredNames } from "../registry.js";
import { deriveSeed } from "../rng.js";
import { isModelName, MODEL_NAMES, type ModelName } from "./names.js";

/**
 * The model zoo: the architectures from the papers we reproduce (FedAvg's 2NN and CNN, FedProx's
 * multinomial logistic regression) plus tiny models that train in seconds on the cpu backend.
 *
 * Every layer gets an explicit name ("conv1", "fc1", "out"): tfjs auto-names change between
 * instances in one process ("dense_Dense3"), and fedsim matches weights across processes by
 * layer name.
 */
export { isModelName, MODEL_NAMES, type ModelName } from "./names.js";

export interface BuildModelOptions {
  /** Shape of one example, without the batch dimension, e.g. [28, 28, 1] or [784]. */
  inputShape: number[];
  numClasses: number;
  /** When given, every kernel initialiser is seeded so two builds are bit-for-bit identical. */
  seed?: number;
}

export function buildModel(name: ModelName, options: BuildModelOptions): tf.LayersModel {
  if (!isModelName(name)) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `unknown model "${String(name)}"; valid models: ${MODEL_NAMES.join(", ")}`,
    );
  }
  validateOptions(name, options);
  const layers = new LayerFactory(options);
  switch (name) {
    case "mnist-2nn":
      return sequential(name, [
        ...layers.flattenIfNeeded(),
        layers.dense("fc1", 200, "relu"),
        layers.dense("fc2", 200, "relu"),
        layers.dense("out", options.numClasses, "softmax"),
      ]);
    case "mnist-cnn":
      // McMahan et al. 2017: two 5x5 convs (32, 64 channels) each followed by 2x2 max pooling,
      // a 512-unit dense layer and a softmax; "same" padding gives 1,663,370 params on MNIST.
      return sequential(name, [
        layers.conv("conv1", 32, 5),
        layers.pool("pool1"),
        layers.conv("conv2", 64, 5),
        layers.pool("pool2"),
        layers.flatten(),
        layers.dense("fc1", 512, "relu"),
        layers.dense("out", options.numClasses, "softmax"),
      ]);
    case "tiny-cnn":
      return sequential(name, [
        layers.conv("conv1", 4, 3),
        layers.pool("pool1"),
        layers.conv("conv2", 8, 3),
        layers.pool("pool2"),
        layers.flatten(),
        layers.dense("out", options.numClasses, "softmax"),
      ]);
    case "tiny-mlp":
      return sequential(name, [
        ...layers.flattenIfNeeded(),
        layers.dense("fc1", 32, "relu"),
        layers.dense("out", options.numClasses, "softmax"),
      ]);
    case "logreg":
      return sequential(name, [
        ...layers.flattenIfNeeded(),
        layers.dense("out", options.numClasses, "softmax"),
      ]);
  }
}

/**
 * Builds a zoo model or one registered with `defineModel`, by name. A registered builder gets the
 * same options as the zoo's (the dataset's example shape and class count, the run's seed).
 */
export function buildNamedModel(name: string, options: BuildModelOptions): tf.LayersModel {
  if (isModelName(name)) return buildModel(name, options);
  const definition = registeredModel(name);
  if (!definition) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `model: unknown "${name}"; choose one of ${[...MODEL_NAMES, ...registeredNames("model")].join(", ")}`,
    );
  }
  const model = definition.build(options);
  // A model from another copy of tfjs would train on a backend fedsim never set up.
  if (!(model instanceof tf.LayersModel)) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `model "${name}": build() must return a tf.LayersModel from fedsim's TensorFlow.js (import { tf } from "fedsim")`,
    );
  }
  return model;
}

export function countParams(model: tf.LayersModel): number {
  return model.countParams();
}

function sequential(name: ModelName, layers: tf.layers.Layer[]): tf.LayersModel {
  // Model names take part in tfjs scoping rules that reject "-".
  return tf.sequential({ name: name.replace(/-/g, "_"), layers });
}

/** Builds named layers; only the first one carries the input shape. */
class LayerFactory {
  private inputShapeUsed = false;

  constructor(private readonly options: BuildModelOptions) {}

  /** Flatten is only valid (and only needed) when an example has more than one axis. */
  flattenIfNeeded(): tf.layers.Layer[] {
    return this.options.inputShape.length > 1 ? [this.flatten()] : [];
  }

  flatten(): tf.layers.Layer {
    return tf.layers.flatten({ name: "flatten", ...this.firstLayerArgs() });
  }

  dense(name: string, units: number, activation: "relu" | "softmax"): tf.layers.Layer {
    return tf.layers.dense({
      name,
      units,
      activation,
      kernelInitializer: this.kernelInitializer(name),
      ...this.firstLayerArgs(),
    });
  }

  conv(name: string, filters: number, kernelSize: number): tf.layers.Layer {
    return tf.layers.conv2d({
      name,
      filters,
      kernelSize,
      padding: "same",
      activation: "relu",
      kernelInitializer: this.kernelInitializer(name),
      ...this.firstLayerArgs(),
    });
  }

  pool(name: string): tf.layers.Layer {
    return tf.layers.maxPooling2d({ name, poolSize: 2, strides: 2, ...this.firstLayerArgs() });
  }

  private firstLayerArgs(): { inputShape?: number[] } {
    if (this.inputShapeUsed) return {};
    this.inputShapeUsed = true;
    return { inputShape: [...this.options.inputShape] };
  }

  private kernelInitializer(layerName: string): ReturnType<typeof tf.initializers.glorotUniform> {
    const seed = this.options.seed;
    // Per-layer seeds: the same seed on every layer would give correlated kernels.
    return tf.initializers.glorotUniform(seed === undefined ? {} : { seed: deriveSeed(seed, layerName) });
  }
}

function validateOptions(name: ModelName, options: BuildModelOptions): void {
  const { inputShape, numClasses, seed } = options;
  if (
    !Array.isArray(inputShape) ||
    inputShape.length === 0 ||
    !inputShape.every((d) => Number.isInteger(d) && d > 0)
  ) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `inputShape must be a non-empty list of positive integers, got ${JSON.stringify(inputShape)}`,
    );
  }
  if (!Number.isInteger(numClasses) || numClasses < 2) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `numClasses must be an integer >= 2, got ${numClasses}`);
  }
  if (seed !== undefined && !Number.isFinite(seed)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `seed must be a finite number, got ${seed}`);
  }
  if (name === "mnist-cnn" || name === "tiny-cnn") {
    // Two 2x2 poolings need at least 4 pixels per side.
    if (inputShape.length !== 3 || inputShape[0] < 4 || inputShape[1] < 4) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `${name} needs inputShape [height, width, channels] with height and width >= 4, got ${JSON.stringify(inputShape)}`,
      );
    }
  }
}
