import * as tf from "@tensorflow/tfjs";
import { ErrorCode, FedsimError } from "../errors.js";
import { BINARY_OPS, defaultAddonPath, loadConfiguredAddon, type NativeAddon } from "../native/addon.js";
import { NATIVE_BACKEND, nativeBackendFactory } from "./native-backend.js";
import {
  conv2D,
  conv2DBackpropFilter,
  conv2DBackpropInput,
  fusedConv2D,
  maxPool,
  maxPoolGrad,
} from "./native-conv-kernels.js";
import { registerNativeGradients } from "./native-gradients.js";
import type { KernelBuilder } from "./native-kernel-util.js";
import {
  batchMatMul,
  binaryKernel,
  fusedMatMul,
  sum,
  UNARY_OPS,
  unaryKernel,
} from "./native-math-kernels.js";

export { BUILD_REMEDY, defaultAddonPath } from "../native/addon.js";
export { NATIVE_BACKEND } from "./native-backend.js";

export interface NativeStatus {
  available: boolean;
  /** "oneDNN 2.6.3 (avx512_core), 2 threads" when available; why not (with the remedy) otherwise. */
  reason: string;
  path: string;
  dnnlVersion?: string;
  isa?: string;
  threads?: number;
}

const KERNELS: ReadonlyArray<[string, KernelBuilder]> = [
  [tf.Conv2D, conv2D],
  [tf.FusedConv2D, fusedConv2D],
  [tf.Conv2DBackpropInput, conv2DBackpropInput],
  [tf.Conv2DBackpropFilter, conv2DBackpropFilter],
  [tf.BatchMatMul, batchMatMul],
  [tf._FusedMatMul, fusedMatMul],
  [tf.MaxPool, maxPool],
  [tf.MaxPoolGrad, maxPoolGrad],
  [tf.Sum, sum],
  ...Object.entries(BINARY_OPS)
    .filter(([name]) => name !== "ReluGrad")
    .map(([name, op]): [string, KernelBuilder] => [name, binaryKernel(op)]),
  ...Object.entries(UNARY_OPS).map(([name, op]): [string, KernelBuilder] => [name, unaryKernel(op)]),
];

/** Names of the kernels the addon implements (the rest of `native` is the cpu backend's). */
export const NATIVE_KERNEL_NAMES: readonly string[] = KERNELS.map(([name]) => name);

/** Whether the addon loads, with oneDNN's version and ISA, or why not. `addonPath` is for tests. */
export function nativeStatus(addonPath: string = defaultAddonPath()): NativeStatus {
  const result = loadConfiguredAddon(addonPath);
  if (result.addon === undefined) return { available: false, reason: result.reason, path: result.path };
  const { dnnlVersion, isa, threads } = result.addon.info();
  return {
    available: true,
    reason: `oneDNN ${dnnlVersion} (${isa}), ${threads} thread${threads === 1 ? "" : "s"}`,
    path: result.path,
    dnnlVersion,
    isa,
    threads,
  };
}

/** The loaded addon; throws BACKEND_UNAVAILABLE with the reason and remedy when it is missing. */
export function requireNativeAddon(addonPath: string = defaultAddonPath()): NativeAddon {
  const result = loadConfiguredAddon(addonPath);
  if (result.addon === undefined) {
    throw new FedsimError(ErrorCode.BACKEND_UNAVAILABLE, `native kernels unavailable: ${result.reason}`);
  }
  return result.addon;
}

/** Sets the oneDNN/OpenMP thread count of this process (default: FEDSIM_NATIVE_THREADS or one per core). */
export function setNativeThreads(threads: number, addonPath: string = defaultAddonPath()): void {
  if (!Number.isInteger(threads) || threads < 1) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `threads must be a positive integer, got ${threads}`);
  }
  requireNativeAddon(addonPath).setThreads(threads);
}

const fallbacks = new Map<string, number>();

/**
 * How often each native kernel handed its inputs to the stock cpu kernel (a dtype, layout or broadcast the
 * addon does not cover). Tests use it to prove the native path really ran; zero in normal training.
 */
export function nativeFallbackCounts(): ReadonlyMap<string, number> {
  return fallbacks;
}

function countingFallback(kernelName: string, stock: tf.KernelFunc): tf.KernelFunc {
  return (params) => {
    fallbacks.set(kernelName, (fallbacks.get(kernelName) ?? 0) + 1);
    return stock(params);
  };
}

function registerKernels(addon: NativeAddon): void {
  const nativeKernels = new Map(KERNELS);
  for (const config of tf.getKernelsForBackend("cpu")) {
    if (tf.getKernel(config.kernelName, NATIVE_BACKEND) !== undefined) continue;
    const builder = nativeKernels.get(config.kernelName);
    const kernelFunc =
      builder === undefined
        ? config.kernelFunc
        : builder(addon, countingFallback(config.kernelName, config.kernelFunc));
    tf.registerKernel({ ...config, backendName: NATIVE_BACKEND, kernelFunc });
  }
}

/**
 * Registers the `native` backend and its kernels (idempotent) and returns the native kernel names.
 * Does not switch to it: call `tf.setBackend("native")` (or fedsim's initBackend("native")).
 */
export function registerNativeBackend(addonPath: string = defaultAddonPath()): string[] {
  const addon = requireNativeAddon(addonPath);
  if (tf.findBackendFactory(NATIVE_BACKEND) === null) {
    // Priority 0: tfjs never picks it on its own; fedsim selects backends explicitly.
    tf.registerBackend(NATIVE_BACKEND, nativeBackendFactory(), 0);
  }
  registerKernels(addon);
  registerNativeGradients(addon);
  return [...NATIVE_KERNEL_NAMES];
}
