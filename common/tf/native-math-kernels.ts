/**
 * Matmuls, elementwise ops and sums of the `native` backend. While gradients are recorded TensorFlow.js
 * runs Dense and Conv layers unfused (MatMul/Conv2D, then Add for the bias, then Relu), and back-prop adds
 * Step, Multiply and Sum: before they were native these took most of a CNN step (MEASURED.md).
 * float32 only; other dtypes and broadcast patterns the addon does not index go to the stock cpu kernel.
 */
import * as tf from "@tensorflow/tfjs";
import { broadcastInner, type KernelBuilder, nativeArgs, requireInput } from "./native-kernel-util.js";

const product = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

interface MatmulPlan {
  batchA: number;
  batchB: number;
  m: number;
  n: number;
  k: number;
  outShape: number[];
}

/** Sizes of op(a)·op(b) with the batch axes broadcast; null when a batch would need a general broadcast. */
function planMatmul(
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
): MatmulPlan | null {
  const rankA = a.shape.length;
  const rankB = b.shape.length;
  if (rankA < 2 || rankB < 2) return null;
  const m = transposeA ? a.shape[rankA - 1] : a.shape[rankA - 2];
  const k = transposeA ? a.shape[rankA - 2] : a.shape[rankA - 1];
  const kB = transposeB ? b.shape[rankB - 1] : b.shape[rankB - 2];
  const n = transposeB ? b.shape[rankB - 2] : b.shape[rankB - 1];
  if (k !== kB) return null; // the stock kernel words the error
  const outerA = a.shape.slice(0, -2);
  const outerB = b.shape.slice(0, -2);
  const outer = tf.backend_util.assertAndGetBroadcastShape(outerA, outerB);
  const batch = product(outer);
  const batchA = product(outerA);
  const batchB = product(outerB);
  // A batch equal to the output's is the full (same-shaped) batch; 1 is broadcast; anything else is not ours.
  if ((batchA !== 1 && batchA !== batch) || (batchB !== 1 && batchB !== batch)) return null;
  return { batchA, batchB, m, n, k, outShape: [...outer, m, n] };
}

export const batchMatMul: KernelBuilder = (addon, stock) => (params) => {
  const args = nativeArgs(params);
  const a = requireInput(args, "a");
  const b = requireInput(args, "b");
  const transposeA = args.attrs["transposeA"] === true;
  const transposeB = args.attrs["transposeB"] === true;
  if (a.dtype !== "float32" || b.dtype !== "float32") return stock(params);
  const plan = planMatmul(a, b, transposeA, transposeB);
  if (plan === null) return stock(params);
  return runMatmul(addon, args.backend, a, b, plan, transposeA, transposeB, null, 1, false);
};

/** Needs its own override: the stock _FusedMatMul calls its own matmul directly, not the BatchMatMul kernel. */
export const fusedMatMul: KernelBuilder = (addon, stock) => (params) => {
  const args = nativeArgs(params);
  const a = requireInput(args, "a");
  const b = requireInput(args, "b");
  const bias = args.inputs["bias"];
  const transposeA = args.attrs["transposeA"] === true;
  const transposeB = args.attrs["transposeB"] === true;
  const activation = args.attrs["activation"] ?? "linear";
  if (a.dtype !== "float32" || b.dtype !== "float32" || (bias !== undefined && bias.dtype !== "float32")) {
    return stock(params);
  }
  if (activation !== "linear" && activation !== "relu") return stock(params);
  const plan = planMatmul(a, b, transposeA, transposeB);
  if (plan === null) return stock(params);
  const biasInner = bias === undefined ? 1 : broadcastInner(bias.shape, plan.outShape);
  if (biasInner === null) return stock(params);
  const backend = args.backend;
  const biasValues = bias === undefined ? null : backend.floats(bias);
  return runMatmul(
    addon,
    backend,
    a,
    b,
    plan,
    transposeA,
    transposeB,
    biasValues,
    biasInner,
    activation === "relu",
  );
};

/** One native matmul into a pooled output array (bias and relu optional). */
function runMatmul(
  addon: Parameters<KernelBuilder>[0],
  backend: ReturnType<typeof nativeArgs>["backend"],
  a: tf.TensorInfo,
  b: tf.TensorInfo,
  plan: NonNullable<ReturnType<typeof planMatmul>>,
  transposeA: boolean,
  transposeB: boolean,
  bias: Float32Array | null,
  biasInner: number,
  relu: boolean,
): tf.TensorInfo {
  const c = backend.pool.allocate(product(plan.outShape));
  const { batchA, batchB, m, n, k } = plan;
  addon.matmul(
    backend.floats(a),
    backend.floats(b),
    c,
    batchA,
    batchB,
    m,
    n,
    k,
    transposeA,
    transposeB,
    bias,
    biasInner,
    relu,
  );
  return backend.output(plan.outShape, c);
}

export const UNARY_OPS = {
  Relu: 0,
  Step: 1,
  Neg: 2,
  Exp: 3,
  Log: 4,
  Square: 5,
  Sqrt: 6,
  Reciprocal: 7,
} as const;

export function binaryKernel(op: number): KernelBuilder {
  return (addon, stock) => (params) => {
    const args = nativeArgs(params);
    const a = requireInput(args, "a");
    const b = requireInput(args, "b");
    if (a.dtype !== "float32" || b.dtype !== "float32") return stock(params);
    const outShape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    const aInner = broadcastInner(a.shape, outShape);
    const bInner = broadcastInner(b.shape, outShape);
    const size = product(outShape);
    if (aInner === null || bInner === null || size === 0) return stock(params);
    const backend = args.backend;
    const out = backend.pool.allocate(size);
    addon.binary(op, backend.floats(a), aInner, backend.floats(b), bInner, out);
    return backend.output(outShape, out);
  };
}

export function unaryKernel(op: number): KernelBuilder {
  return (addon, stock) => (params) => {
    const args = nativeArgs(params);
    const x = requireInput(args, "x");
    if (x.dtype !== "float32") return stock(params);
    const backend = args.backend;
    const out = backend.pool.allocate(product(x.shape));
    const alpha = (args.attrs["alpha"] as number | undefined) ?? 0;
    addon.unary(op, backend.floats(x), out, alpha);
    return backend.output([...x.shape], out);
  };
}

/** Sum over a contiguous run of axes (a bias gradient sums all but the last), accumulated in double. */
export const sum: KernelBuilder = (addon, stock) => (params) => {
  const args = nativeArgs(params);
  const x = requireInput(args, "x");
  if (x.dtype !== "float32") return stock(params);
  const axes = tf.util.parseAxisParam(args.attrs["axis"] as number | number[], x.shape).sort((p, q) => p - q);
  if (axes.length === 0 || axes.some((axis, i) => axis !== axes[0] + i)) return stock(params);
  const first = axes[0];
  const last = axes[axes.length - 1];
  const outer = product(x.shape.slice(0, first));
  const reduce = product(x.shape.slice(first, last + 1));
  const inner = product(x.shape.slice(last + 1));
  const keepDims = args.attrs["keepDims"] === true;
  const outShape = keepDims
    ? x.shape.map((dim, axis) => (axes.includes(axis) ? 1 : dim))
    : x.shape.filter((_, axis) => !axes.includes(axis));
  if (outer * inner === 0) return stock(params);
  const backend = args.backend;
  const out = backend.pool.allocate(outer * inner);
  addon.sum(backend.floats(x), out, outer, reduce, inner);
  return backend.output(outShape, out);
};
