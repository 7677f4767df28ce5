/**
 * Makes the wasm backend usable for training: registers the missing Conv2DBackpropFilter and replaces the
 * slow paths that back-propagation hits (Conv2DBackpropInput, matmuls with transpose flags).
 * Each replacement matches the cpu backend's kernels to a relative error well under 1e-5.
 */
import * as tf from "@tensorflow/tfjs";
import { conv2DBackpropFilterKernel, conv2DBackpropInputKernel } from "./wasm-conv-kernels.js";
import { isFedsimKernel, tagAsFedsimKernel, WASM_BACKEND, wasmKernelFunc } from "./wasm-kernel-calls.js";
import { makeBatchMatMul, makeFusedMatMul } from "./wasm-matmul-kernels.js";

interface Replacement {
  kernelName: string;
  /** Builds the fedsim kernel; `stock` is the kernel it replaces, kept as the fallback. */
  build(stock: tf.KernelFunc | undefined): tf.KernelFunc;
}

function needStock(kernelName: string, stock: tf.KernelFunc | undefined): tf.KernelFunc {
  return stock ?? wasmKernelFunc(kernelName);
}

const REPLACEMENTS: readonly Replacement[] = [
  { kernelName: tf.Conv2DBackpropFilter, build: () => conv2DBackpropFilterKernel() },
  {
    kernelName: tf.Conv2DBackpropInput,
    build: (stock) => conv2DBackpropInputKernel(needStock(tf.Conv2DBackpropInput, stock)),
  },
  {
    kernelName: tf.BatchMatMul,
    build: (stock) => tagAsFedsimKernel(makeBatchMatMul(needStock(tf.BatchMatMul, stock))),
  },
  {
    kernelName: tf._FusedMatMul,
    build: (stock) => tagAsFedsimKernel(makeFusedMatMul(needStock(tf._FusedMatMul, stock))),
  },
];

/** Stock configs this module replaced, so they can be put back (benchmarks compare before and after). */
const stockConfigs = new Map<string, tf.KernelConfig | undefined>();

/**
 * Registers fedsim's training kernels for the wasm backend and returns their kernel names. Idempotent.
 * Call after `import "@tensorflow/tfjs-backend-wasm"`; before or after `tf.setBackend("wasm")` both work,
 * because each replacement carries the stock kernel's setup function.
 */
export function registerWasmTrainingKernels(): string[] {
  // Fail before touching the registry if the wasm package has not registered the kernels we build on.
  for (const needed of [tf.Conv2D, tf.Transpose, tf.Slice, tf.Reverse]) wasmKernelFunc(needed);

  for (const replacement of REPLACEMENTS) {
    const current = tf.getKernel(replacement.kernelName, WASM_BACKEND);
    if (current !== undefined && isFedsimKernel(current.kernelFunc)) continue;
    const kernelFunc = replacement.build(current?.kernelFunc);
    if (current !== undefined) tf.unregisterKernel(replacement.kernelName, WASM_BACKEND);
    stockConfigs.set(replacement.kernelName, current);
    tf.registerKernel({
      kernelName: replacement.kernelName,
      backendName: WASM_BACKEND,
      kernelFunc,
      setupFunc: current?.setupFunc,
      disposeFunc: current?.disposeFunc,
    });
  }
  return REPLACEMENTS.map((replacement) => replacement.kernelName);
}

/** Names of the fedsim kernels currently registered for wasm. */
export function activeWasmTrainingKernels(): string[] {
  return REPLACEMENTS.map((replacement) => replacement.kernelName).filter((name) =>
    isFedsimKernel(tf.getKernel(name, WASM_BACKEND)?.kernelFunc),
  );
}

/** Puts back the stock wasm kernels this module replaced (Conv2DBackpropFilter becomes unregistered again). */
export function restoreStockWasmKernels(): void {
  for (const [kernelName, stock] of stockConfigs) {
    if (isFedsimKernel(tf.getKernel(kernelName, WASM_BACKEND)?.kernelFunc)) {
      tf.unregisterKernel(kernelName, WASM_BACKEND);
    }
    if (stock !== undefined && tf.getKernel(kernelName, WASM_BACKEND) === undefined) tf.registerKernel(stock);
  }
  stockConfigs.clear();
}
