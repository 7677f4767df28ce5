/**
 * Shared plumbing for the `native` backend's kernels: typed kernel arguments and the broadcast patterns
 * the addon's elementwise loops understand.
 */
import type * as tf from "@tensorflow/tfjs";
import { ErrorCode, FedsimError } from "../errors.js";
import type { NativeAddon } from "../native/addon.js";
import type { NativeBackend } from "./native-backend.js";

export interface NativeKernelArgs {
  inputs: tf.NamedTensorInfoMap;
  backend: NativeBackend;
  attrs: tf.NamedAttrMap;
}

/** Builds a native kernel; `stock` is the cpu backend's kernel, used for every case the addon does not cover. */
export type KernelBuilder = (addon: NativeAddon, stock: tf.KernelFunc) => tf.KernelFunc;

export function nativeArgs(params: Parameters<tf.KernelFunc>[0]): NativeKernelArgs {
  return {
    inputs: params.inputs,
    backend: params.backend as NativeBackend,
    attrs: params.attrs ?? {},
  };
}

export function requireInput(args: NativeKernelArgs, name: string): tf.TensorInfo {
  const info = args.inputs[name];
  if (info === undefined) {
    throw new FedsimError(ErrorCode.INTERNAL, `native kernel: input '${name}' is missing`);
  }
  return info;
}

const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

/**
 * How an operand of shape `shape` broadcast to `outShape` is indexed by the addon:
 * operand[(i / inner) % operand.length] for output index i. That holds when the operand's non-1 axes form
 * one contiguous run that matches the output (a full tensor, a scalar, a bias over the last axes, a
 * keepDims reduction result); null for any other pattern (then the stock kernel runs).
 */
export function broadcastInner(shape: readonly number[], outShape: readonly number[]): number | null {
  if (shape.length > outShape.length) return null;
  const padded = [...new Array<number>(outShape.length - shape.length).fill(1), ...shape];
  const kept = padded.flatMap((dim, axis) => (dim !== 1 ? [axis] : []));
  if (kept.length === 0) return 1;
  const first = kept[0];
  const last = kept[kept.length - 1];
  for (let axis = first; axis <= last; axis++) {
    if (padded[axis] !== outShape[axis]) return null;
  }
  return product(outShape.slice(last + 1));
}
