/**
 * Plumbing for fedsim's wasm kernels: calling the stock wasm kernels directly and freeing what they return.
 *
 * Kernels run inside another kernel call the registered kernel functions, not tf ops: that keeps the
 * intermediates off the engine (no tape entries, no tracked tensors) so each one can be freed the moment
 * it is no longer needed, and the result is exactly what the engine would have received from the stock kernel.
 */
import * as tf from "@tensorflow/tfjs";
import { ErrorCode, FedsimError } from "../errors.js";

export const WASM_BACKEND = "wasm";

/** The part of the wasm backend these kernels touch: freeing buffers they created. */
export interface BufferOwner {
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

export interface KernelArgs {
  inputs: tf.NamedTensorInfoMap;
  backend: BufferOwner;
  attrs: tf.NamedAttrMap;
}

/** The arguments a KernelFunc receives, with the backend narrowed to what we use. */
export function kernelArgs(params: Parameters<tf.KernelFunc>[0]): KernelArgs {
  return {
    inputs: params.inputs,
    backend: params.backend as BufferOwner,
    attrs: params.attrs ?? {},
  };
}

export function requireInput(inputs: tf.NamedTensorInfoMap, name: string, kernelName: string): tf.TensorInfo {
  const info = inputs[name];
  if (info === undefined) {
    throw new FedsimError(ErrorCode.INTERNAL, `${kernelName}: input '${name}' is missing`);
  }
  return info;
}

/** The kernel function currently registered for the wasm backend, or a clear error if the wasm package is not loaded. */
export function wasmKernelFunc(kernelName: string): tf.KernelFunc {
  const config = tf.getKernel(kernelName, WASM_BACKEND);
  if (config === undefined) {
    throw new FedsimError(
      ErrorCode.BACKEND_UNAVAILABLE,
      `wasm kernel '${kernelName}' is not registered: import "@tensorflow/tfjs-backend-wasm" before registering fedsim's wasm kernels`,
    );
  }
  return config.kernelFunc;
}

/** Runs a kernel that returns one tensor. The caller owns the result and frees it with `release`. */
export function callKernel(
  kernel: tf.KernelFunc,
  backend: BufferOwner,
  inputs: tf.NamedTensorInfoMap,
  attrs: tf.NamedAttrMap,
): tf.TensorInfo {
  const out = kernel({ inputs, backend, attrs });
  if (Array.isArray(out)) {
    throw new FedsimError(ErrorCode.INTERNAL, "expected a single-output kernel");
  }
  return out;
}

export function callWasmKernel(
  kernelName: string,
  backend: BufferOwner,
  inputs: tf.NamedTensorInfoMap,
  attrs: tf.NamedAttrMap,
): tf.TensorInfo {
  return callKernel(wasmKernelFunc(kernelName), backend, inputs, attrs);
}

export function transposeInfo(backend: BufferOwner, x: tf.TensorInfo, perm: number[]): tf.TensorInfo {
  return callWasmKernel(tf.Transpose, backend, { x }, { perm });
}

/** Swaps the two innermost axes, the layout change a matmul transpose flag asks for. */
export function swapInnerAxes(backend: BufferOwner, x: tf.TensorInfo): tf.TensorInfo {
  const rank = x.shape.length;
  const perm = Array.from({ length: rank }, (_, axis) => axis);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return transposeInfo(backend, x, perm);
}

/**
 * Frees intermediates made by stock kernels. Some stock kernels (Reshape) share the input's buffer and bump
 * its reference count, so this decrements rather than forces: an input is never freed from under its owner.
 */
export function release(backend: BufferOwner, infos: readonly tf.TensorInfo[]): void {
  for (const info of infos) backend.disposeData(info.dataId);
}

/** Marks kernel functions as fedsim's, so registration can tell its own kernels from stock ones across module copies. */
const FEDSIM_KERNEL_TAG = Symbol.for("fedsim.wasmTrainingKernel");

export function tagAsFedsimKernel(kernel: tf.KernelFunc): tf.KernelFunc {
  Object.defineProperty(kernel, FEDSIM_KERNEL_TAG, { value: true });
  return kernel;
}

export function isFedsimKernel(kernel: tf.KernelFunc | undefined): boolean {
  return kernel !== undefined && (kernel as unknown as Record<symbol, unknown>)[FEDSIM_KERNEL_TAG] === true;
}
