/**
 * Matmuls with transpose flags for the wasm backend.
 *
 * The stock wasm matmul reaches XNNPACK (10–20 GFLOP/s) only with no transpose flag and batch size 1; any
 * flag drops it to a naive loop of about 1 GFLOP/s, and every Dense layer's backward pass sets one. XNNPACK
 * also repacks the right-hand operand ("the weights") whenever it is a new tensor, which in training is
 * every call. So each flagged product is rewritten into a flag-free one, choosing the rewrite that moves
 * the fewest elements: transposing the flagged operands, or computing the transposed product
 * Cᵀ = op(B)ᵀ·op(A)ᵀ and transposing that. For a Dense layer's input gradient dy·Wᵀ with a small batch the
 * second form avoids copying and repacking the whole weight matrix.
 */
import * as tf from "@tensorflow/tfjs";
import { type BufferOwner, kernelArgs, release, requireInput, swapInnerAxes } from "./wasm-kernel-calls.js";

const batchSize = (shape: number[]) => shape.slice(0, -2).reduce((a, b) => a * b, 1);

/** Element passes (copies plus XNNPACK's weight packing) of each rewrite; the multiply-adds are the same. */
export function prefersTransposedProduct(
  m: number,
  k: number,
  n: number,
  transposeA: boolean,
  transposeB: boolean,
): boolean {
  const transposeOperands = (transposeA ? m * k : 0) + (transposeB ? n * k : 0) + k * n;
  const transposedProduct = (transposeB ? 0 : n * k) + (transposeA ? 0 : m * k) + m * k + m * n;
  return transposedProduct < transposeOperands;
}

/** Runs `stock` without flags on explicitly transposed operands, freeing the copies afterwards. */
function withOperandsTransposed(
  stock: tf.KernelFunc,
  params: Parameters<tf.KernelFunc>[0],
  backend: BufferOwner,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
): tf.TensorInfo {
  const owned: tf.TensorInfo[] = [];
  try {
    const aPlain = transposeA ? swapInnerAxes(backend, a) : a;
    if (transposeA) owned.push(aPlain);
    const bPlain = transposeB ? swapInnerAxes(backend, b) : b;
    if (transposeB) owned.push(bPlain);
    return stock({
      inputs: { ...params.inputs, a: aPlain, b: bPlain },
      backend,
      attrs: { ...params.attrs, transposeA: false, transposeB: false },
    }) as tf.TensorInfo;
  } finally {
    release(backend, owned);
  }
}

/** C = (op(B)ᵀ · op(A)ᵀ)ᵀ; an operand whose flag is set is already in the layout this product needs. */
function asTransposedProduct(
  stock: tf.KernelFunc,
  backend: BufferOwner,
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
): tf.TensorInfo {
  const owned: tf.TensorInfo[] = [];
  try {
    const left = transposeB ? b : swapInnerAxes(backend, b);
    if (!transposeB) owned.push(left);
    const right = transposeA ? a : swapInnerAxes(backend, a);
    if (!transposeA) owned.push(right);
    const productT = stock({
      inputs: { a: left, b: right },
      backend,
      attrs: { transposeA: false, transposeB: false },
    }) as tf.TensorInfo;
    owned.push(productT);
    return swapInnerAxes(backend, productT);
  } finally {
    release(backend, owned);
  }
}

/** BatchMatMul: flag-free rewrites for batch size 1, where the fast path exists; the stock kernel otherwise. */
export function makeBatchMatMul(stock: tf.KernelFunc): tf.KernelFunc {
  return (params) => {
    const { inputs, backend, attrs } = kernelArgs(params);
    const a = requireInput(inputs, "a", tf.BatchMatMul);
    const b = requireInput(inputs, "b", tf.BatchMatMul);
    const transposeA = attrs["transposeA"] === true;
    const transposeB = attrs["transposeB"] === true;
    // Non-float32 inputs go to the stock kernel, which reports them in its own words. With a batch
    // dimension the stock kernel never reaches XNNPACK, and its loop reads transposed operands just as well.
    if (
      (!transposeA && !transposeB) ||
      a.dtype !== "float32" ||
      b.dtype !== "float32" ||
      batchSize(a.shape) !== 1 ||
      batchSize(b.shape) !== 1
    ) {
      return stock(params);
    }
    const rankA = a.shape.length;
    const m = transposeA ? a.shape[rankA - 1] : a.shape[rankA - 2];
    const k = transposeA ? a.shape[rankA - 2] : a.shape[rankA - 1];
    const n = transposeB ? b.shape[b.shape.length - 2] : b.shape[b.shape.length - 1];
    if (prefersTransposedProduct(m, k, n, transposeA, transposeB)) {
      return asTransposedProduct(stock, backend, a, b, transposeA, transposeB);
    }
    return withOperandsTransposed(stock, params, backend, a, b, transposeA, transposeB);
  };
}

/**
 * _FusedMatMul calls its own C++ matmul, so it needs its own override. Bias and activation apply to C
 * itself, so only the operand transposes are used here. Rank 3, as the fused op always passes.
 */
export function makeFusedMatMul(stock: tf.KernelFunc): tf.KernelFunc {
  return (params) => {
    const { inputs, backend, attrs } = kernelArgs(params);
    const a = requireInput(inputs, "a", tf._FusedMatMul);
    const b = requireInput(inputs, "b", tf._FusedMatMul);
    const transposeA = attrs["transposeA"] === true;
    const transposeB = attrs["transposeB"] === true;
    if ((!transposeA && !transposeB) || a.dtype !== "float32" || b.dtype !== "float32") return stock(params);
    return withOperandsTransposed(stock, params, backend, a, b, transposeA, transposeB);
  };
}
