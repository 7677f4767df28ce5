import * as tf from "@tensorflow/tfjs";
import { ErrorCode, FedsimError } from "../errors.js";
import { peekFloats } from "../tf/native-backend.js";
import { assertSynchronousReads, readsSynchronously } from "../tf/read.js";
import { subtractInto } from "../vector-passes.js";
import {
  type FlatWeights,
  specsEqual,
  type TensorSpec,
  tensorOffsets,
  tensorSize,
  totalSize,
} from "../weights.js";

/**
 * The bridge between a tfjs model and FlatWeights (common/weights.ts, which knows no tfjs): read a
 * model's tensors into one flat vector, write one back, take local − global. Tensor names are `${layer.name}/${short}`
 * (e.g. "fc1/kernel"): tfjs's own `variable.name` carries process-unique suffixes ("fc1/kernel_3")
 * that differ between two instances of the same model.
 */
export interface WeightSelection {
  /** Only the weights the optimiser updates (frozen layers excluded). Default false. */
  trainableOnly?: boolean;
}

interface NamedVariable {
  spec: TensorSpec;
  variable: tf.LayerVariable;
}

/**
 * Walks layers in model order, so the order of tensors never depends on which layers are frozen
 * (tfjs's `model.weights` lists trainable weights first and reorders when one is frozen).
 */
function namedVariables(model: tf.LayersModel, selection: WeightSelection = {}): NamedVariable[] {
  const trainableOnly = selection.trainableOnly ?? false;
  const out: NamedVariable[] = [];
  for (const layer of model.layers) {
    const trainable = new Set(layer.trainableWeights);
    for (const variable of layer.weights) {
      if (trainableOnly && !trainable.has(variable)) continue;
      out.push({
        spec: { name: `${layer.name}/${shortName(layer.name, variable)}`, shape: variable.shape.map(Number) },
        variable,
      });
    }
  }
  return out;
}

function shortName(layerName: string, variable: tf.LayerVariable): string {
  const original = variable.originalName;
  const prefix = `${layerName}/`;
  if (original.startsWith(prefix)) return original.slice(prefix.length);
  const lastSlash = original.lastIndexOf("/");
  return lastSlash >= 0 ? original.slice(lastSlash + 1) : original;
}

export function modelSpecs(model: tf.LayersModel, selection: WeightSelection = {}): TensorSpec[] {
  return namedVariables(model, selection).map((v) => v.spec);
}

/** The trainable variables, in the same order as `modelSpecs(model, { trainableOnly: true })`. */
export function trainableVariables(model: tf.LayersModel): tf.Variable[] {
  // LayerVariable.read() returns the backing tf.Variable itself (typed as Tensor).
  return namedVariables(model, { trainableOnly: true }).map((v) => v.variable.read() as tf.Variable);
}

/** The model's weights, read synchronously: not on webgpu, where readFlatWeights is the way. */
export function getFlatWeights(model: tf.LayersModel, selection: WeightSelection = {}): FlatWeights {
  assertSynchronousReads("getFlatWeights");
  const vars = namedVariables(model, selection);
  // read() hands out the variable itself, so no tensor is created here.
  return concatenate(
    vars.map((v) => v.spec),
    vars.map(({ variable }) => peekFloats(variable.read())),
  );
}

/** The model's weights on any backend (the webgpu backend reads only asynchronously). */
export async function readFlatWeights(
  model: tf.LayersModel,
  selection: WeightSelection = {},
): Promise<FlatWeights> {
  if (readsSynchronously()) return getFlatWeights(model, selection);
  const vars = namedVariables(model, selection);
  // Every read is queued before any is awaited, so the GPU is waited for once.
  const parts = await Promise.all(
    vars.map(({ variable }) => variable.read().data() as Promise<Float32Array>),
  );
  return concatenate(
    vars.map((v) => v.spec),
    parts,
  );
}

function concatenate(specs: TensorSpec[], parts: Float32Array[]): FlatWeights {
  const values = new Float32Array(totalSize(specs));
  let at = 0;
  for (const data of parts) {
    values.set(data, at);
    at += data.length;
  }
  return { specs, values };
}

/**
 * The model's trainable tensors minus `base` (local − global), in one pass: what a client sends after
 * training. `base` must name exactly the model's trainable tensors, in model order. Written into `out`
 * when given (every element is written), else into a new array. Reads synchronously: not on webgpu,
 * where readFlatDelta is the way.
 */
export function getFlatDelta(model: tf.LayersModel, base: FlatWeights, out?: Float32Array): FlatWeights {
  assertSynchronousReads("getFlatDelta");
  const vars = namedVariables(model, { trainableOnly: true });
  // read() hands out the variable itself, so no tensor is created here.
  return subtractBase(
    vars.map((v) => v.spec),
    vars.map(({ variable }) => peekFloats(variable.read())),
    base,
    out,
  );
}

/** getFlatDelta on any backend (the webgpu backend reads only asynchronously). */
export async function readFlatDelta(
  model: tf.LayersModel,
  base: FlatWeights,
  out?: Float32Array,
): Promise<FlatWeights> {
  if (readsSynchronously()) return getFlatDelta(model, base, out);
  const vars = namedVariables(model, { trainableOnly: true });
  const locals = await Promise.all(
    vars.map(({ variable }) => variable.read().data() as Promise<Float32Array>),
  );
  return subtractBase(
    vars.map((v) => v.spec),
    locals,
    base,
    out,
  );
}

function subtractBase(
  specs: TensorSpec[],
  locals: Float32Array[],
  base: FlatWeights,
  out: Float32Array | undefined,
): FlatWeights {
  if (!specsEqual(specs, base.specs) || base.values.length !== totalSize(specs)) {
    throw new FedsimError(
      ErrorCode.BAD_SHAPE,
      `the trained tensors (${specs.map((s) => s.name).join(", ")}) do not match the ${base.specs.length} tensors the delta is taken from`,
    );
  }
  if (out !== undefined && out.length !== base.values.length) {
    throw new FedsimError(
      ErrorCode.BAD_SHAPE,
      `the delta needs ${base.values.length} values, the output array holds ${out.length}`,
    );
  }
  const delta = out ?? new Float32Array(base.values.length);
  let at = 0;
  for (const local of locals) {
    const end = at + local.length;
    subtractInto(local, base.values.subarray(at, end), delta.subarray(at, end));
    at = end;
  }
  return { specs, values: delta };
}

export interface SetWeightsOptions {
  /**
   * Let the model's tensors view `weights.values` instead of copying them. Only for values nobody
   * writes to while the model holds them (a client's received weights): the cpu and native
   * backends keep the array they are given. Saves one model-sized allocation per fit.
   */
  shareValues?: boolean;
}

/**
 * Assigns weights by name. A subset is fine (e.g. only the trainable tensors); an unknown name or
 * a wrong shape throws BAD_SHAPE before anything is written, so the model is never half-updated.
 */
export function setFlatWeights(
  model: tf.LayersModel,
  weights: FlatWeights,
  options: SetWeightsOptions = {},
): void {
  const share = options.shareValues ?? false;
  const byName = new Map(namedVariables(model).map((v) => [v.spec.name, v]));
  if (weights.values.length !== totalSize(weights.specs)) {
    throw new FedsimError(
      ErrorCode.BAD_SHAPE,
      `weights hold ${weights.values.length} values but their specs describe ${totalSize(weights.specs)}`,
    );
  }
  const targets = weights.specs.map((spec) => {
    const target = byName.get(spec.name);
    if (target === undefined) {
      throw new FedsimError(
        ErrorCode.BAD_SHAPE,
        `unknown tensor "${spec.name}"; the model has ${[...byName.keys()].join(", ")}`,
      );
    }
    if (!sameShape(target.spec.shape, spec.shape)) {
      throw new FedsimError(
        ErrorCode.BAD_SHAPE,
        `tensor "${spec.name}" has shape [${spec.shape.join(",")}], the model expects [${target.spec.shape.join(",")}]`,
      );
    }
    return target;
  });
  const offsets = tensorOffsets(weights.specs);
  tf.tidy(() => {
    targets.forEach((target, i) => {
      // slice() unless shared: the cpu backend keeps the array it is given, so a view aliases the caller's buffer.
      const values = share
        ? weights.values.subarray(offsets[i], offsets[i + 1])
        : weights.values.slice(offsets[i], offsets[i + 1]);
      target.variable.write(tf.tensor(values, target.spec.shape, "float32"));
    });
  });
}

/**
 * Freezes every layer not listed (null = all layers trainable). Unknown names throw
 * INVALID_CONFIG listing the layers that carry weights.
 */
export function setTrainableLayers(model: tf.LayersModel, layerNames: string[] | null): void {
  if (layerNames === null) {
    for (const layer of model.layers) layer.trainable = true;
    return;
  }
  const known = new Set(model.layers.map((l) => l.name));
  const unknown = layerNames.filter((n) => !known.has(n));
  if (unknown.length > 0) {
    const withWeights = model.layers.filter((l) => l.weights.length > 0).map((l) => l.name);
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `unknown layer(s) ${unknown.join(", ")}; valid layers: ${withWeights.join(", ")}`,
    );
  }
  const wanted = new Set(layerNames);
  for (const layer of model.layers) layer.trainable = wanted.has(layer.name);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]) && tensorSize(a) === tensorSize(b);
}
