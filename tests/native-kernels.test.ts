/**
 * The `native` backend's kernels against the stock cpu kernels, forward and through gradients.
 *
 * The kernel comparisons run only when the addon is built (describe.runIf). They cannot pass vacuously in
 * CI: "the addon is built" fails when CI (or FEDSIM_REQUIRE_NATIVE=1) is set and the addon is missing.
 * Without the addon, the loader tests in tests/native-backend.test.ts still run.
 */
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { initBackend } from "../common/tf/backend.js";
import { NATIVE_BACKEND, nativeFallbackCounts, nativeStatus } from "../common/tf/native.js";
import { relativeError as compareRelative, randomValues, sizeOf } from "./helpers/kernel-compare.js";
import { expectNativeWhenRequired } from "./helpers/native-required.js";

const TOLERANCE = 1e-4;
const status = nativeStatus();

it("the addon is built when CI or FEDSIM_REQUIRE_NATIVE=1 is set", () => {
  expectNativeWhenRequired(status.available, status.reason);
});

const relativeError = (actual: Float32Array, expected: Float32Array) =>
  compareRelative(actual, expected, { allowZeroReference: true });

async function outputsOn(backend: string, compute: () => tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const tensors = tf.tidy(compute);
  const values = tensors.map((t) => (t.dataSync() as Float32Array).slice());
  tf.dispose(tensors);
  return values;
}

const totalFallbacks = () => [...nativeFallbackCounts().values()].reduce((a, b) => a + b, 0);

/**
 * Runs `compute` on native and cpu and compares every output. Unless `fallbackExpected`, also checks that
 * no native kernel handed its inputs to the stock one, so the comparison really exercised the addon.
 */
async function expectNativeMatchesCpu(compute: () => tf.Tensor[], fallbackExpected = false): Promise<void> {
  const fallbacksBefore = totalFallbacks();
  const fromNative = await outputsOn(NATIVE_BACKEND, compute);
  if (fallbackExpected) expect(totalFallbacks()).toBeGreaterThan(fallbacksBefore);
  else expect(totalFallbacks()).toBe(fallbacksBefore);
  const fromCpu = await outputsOn("cpu", compute);
  expect(fromNative.length).toBe(fromCpu.length);
  fromNative.forEach((values, i) => {
    expect(relativeError(values, fromCpu[i])).toBeLessThanOrEqual(TOLERANCE);
  });
}

type Pad = "same" | "valid";
type Shape4 = [number, number, number, number];

describe.runIf(status.available)("native kernels match the cpu backend", () => {
  beforeAll(async () => {
    await initBackend("native");
  });

  it("native is active and reports oneDNN", () => {
    expect(tf.getBackend()).toBe(NATIVE_BACKEND);
    expect(status.dnnlVersion).toMatch(/^\d+\.\d+\.\d+$/);
  });

  const CONV_CASES: {
    x: Shape4;
    kernel: number;
    out: number;
    stride: number;
    pad: Pad;
    dilation?: number;
  }[] = [
    { x: [1, 5, 5, 1], kernel: 1, out: 2, stride: 1, pad: "same" },
    { x: [2, 7, 7, 3], kernel: 3, out: 4, stride: 1, pad: "same" },
    { x: [3, 9, 8, 2], kernel: 5, out: 8, stride: 1, pad: "valid" },
    { x: [4, 8, 8, 8], kernel: 3, out: 3, stride: 2, pad: "same" },
    { x: [2, 9, 10, 1], kernel: 5, out: 5, stride: 2, pad: "valid" },
    { x: [1, 8, 8, 4], kernel: 3, out: 2, stride: 2, pad: "valid" },
    { x: [2, 12, 12, 32], kernel: 5, out: 16, stride: 1, pad: "same" },
    { x: [2, 9, 9, 3], kernel: 3, out: 4, stride: 1, pad: "same", dilation: 2 },
  ];

  for (const [index, c] of CONV_CASES.entries()) {
    const name = `conv2d b${c.x[0]} ${c.x.slice(1).join("x")} k${c.kernel} ->${c.out} s${c.stride} ${c.pad}${c.dilation ? ` d${c.dilation}` : ""}`;
    it(`${name}: forward, input and filter gradients`, async () => {
      const wShape: Shape4 = [c.kernel, c.kernel, c.x[3], c.out];
      const xValues = randomValues(sizeOf(c.x), 10 + index);
      const wValues = randomValues(sizeOf(wShape), 20 + index);
      await expectNativeMatchesCpu(() => {
        const x = tf.tensor4d(xValues, c.x);
        const w = tf.tensor4d(wValues, wShape);
        const conv = (xIn: tf.Tensor, wIn: tf.Tensor) =>
          tf.conv2d(xIn as tf.Tensor4D, wIn as tf.Tensor4D, c.stride, c.pad, "NHWC", c.dilation ?? 1);
        const y = conv(x, w);
        // tfjs has no gradient for dilated convs: forward only.
        if (c.dilation !== undefined) return [y];
        const upstream = tf.tensor(randomValues(y.size, 30 + index), y.shape);
        return [y, ...tf.grads(conv)([x, w], upstream)];
      });
    });
  }

  it("fused conv2d with bias and relu (inference path)", async () => {
    const xValues = randomValues(2 * 10 * 10 * 3, 40);
    const wValues = randomValues(5 * 5 * 3 * 6, 41);
    const bValues = randomValues(6, 42);
    await expectNativeMatchesCpu(() => [
      tf.fused.conv2d({
        x: tf.tensor4d(xValues, [2, 10, 10, 3]),
        filter: tf.tensor4d(wValues, [5, 5, 3, 6]),
        bias: tf.tensor1d(bValues),
        strides: 1,
        pad: "same",
        activation: "relu",
      }),
    ]);
  });

  const POOL_CASES: { x: Shape4; size: number; stride: number; pad: Pad }[] = [
    { x: [1, 4, 4, 1], size: 2, stride: 2, pad: "valid" },
    { x: [3, 28, 28, 8], size: 2, stride: 2, pad: "same" },
    { x: [2, 7, 7, 3], size: 3, stride: 2, pad: "same" },
    { x: [2, 7, 6, 5], size: 3, stride: 1, pad: "valid" },
    { x: [2, 5, 5, 4], size: 2, stride: 1, pad: "same" },
  ];

  for (const [index, c] of POOL_CASES.entries()) {
    it(`maxPool b${c.x[0]} ${c.x.slice(1).join("x")} size ${c.size} s${c.stride} ${c.pad}: forward and gradient`, async () => {
      const xValues = randomValues(sizeOf(c.x), 50 + index);
      await expectNativeMatchesCpu(() => {
        // relu first: the windows then hold ties at zero, as after a conv layer, and the first one must win.
        const pool = (xIn: tf.Tensor) => tf.maxPool(tf.relu(xIn) as tf.Tensor4D, c.size, c.stride, c.pad);
        const x = tf.tensor4d(xValues, c.x);
        const y = pool(x);
        const upstream = tf.tensor(randomValues(y.size, 60 + index), y.shape);
        return [y, tf.grad(pool)(x, upstream)];
      });
    });
  }

  const MATMUL_CASES: {
    a: number[];
    b: number[];
    transposeA: boolean;
    transposeB: boolean;
    fallback?: true;
  }[] = [
    { a: [3, 5], b: [5, 4], transposeA: false, transposeB: false },
    { a: [5, 3], b: [5, 4], transposeA: true, transposeB: false },
    { a: [3, 5], b: [4, 5], transposeA: false, transposeB: true },
    { a: [5, 3], b: [4, 5], transposeA: true, transposeB: true },
    { a: [2, 6, 3], b: [2, 6, 7], transposeA: true, transposeB: false },
    { a: [3, 4, 6], b: [1, 5, 6], transposeA: false, transposeB: true },
    { a: [1, 6, 3], b: [4, 6, 2], transposeA: true, transposeB: false },
    { a: [2, 3, 4, 5], b: [2, 3, 5, 2], transposeA: false, transposeB: false },
    // A general batch broadcast: the stock kernel runs.
    { a: [2, 1, 4, 5], b: [1, 3, 5, 2], transposeA: false, transposeB: false, fallback: true },
    { a: [50, 784], b: [784, 200], transposeA: false, transposeB: false },
    // Large enough for the cached matmul primitive that transposed products use (native/src/matmul.cc): a
    // Dense layer's dx and dW at batch 10, both operands transposed, and a batch through one primitive.
    { a: [10, 512], b: [3136, 512], transposeA: false, transposeB: true },
    { a: [10, 3136], b: [10, 512], transposeA: true, transposeB: false },
    { a: [512, 10], b: [3136, 512], transposeA: true, transposeB: true },
    { a: [2, 10, 512], b: [2, 3136, 512], transposeA: false, transposeB: true },
  ];

  for (const [index, c] of MATMUL_CASES.entries()) {
    it(`matMul ${JSON.stringify(c.a)} x ${JSON.stringify(c.b)} tA=${c.transposeA} tB=${c.transposeB}`, async () => {
      const aValues = randomValues(sizeOf(c.a), 70 + index);
      const bValues = randomValues(sizeOf(c.b), 80 + index);
      await expectNativeMatchesCpu(
        () => [tf.matMul(tf.tensor(aValues, c.a), tf.tensor(bValues, c.b), c.transposeA, c.transposeB)],
        c.fallback === true,
      );
    });
  }

  it("fused matMul with bias and relu, and with a linear activation", async () => {
    const aValues = randomValues(6 * 4, 90);
    const bValues = randomValues(5 * 6, 91);
    const biasValues = randomValues(5, 92);
    await expectNativeMatchesCpu(() => {
      const a = tf.tensor2d(aValues, [6, 4]);
      const b = tf.tensor2d(bValues, [5, 6]);
      const bias = tf.tensor1d(biasValues);
      return [
        tf.fused.matMul({ a, b, bias, transposeA: true, transposeB: true, activation: "relu" }),
        tf.fused.matMul({ a, b, transposeA: true, transposeB: true }),
      ];
    });
  });

  it("fused matMul's epilogue: a Dense layer's bias at batch 50, relu alone, a per-row and a scalar bias", async () => {
    // Each takes a different loop in native/src/matmul.cc: the row bias, the bare relu, the general one.
    const x = randomValues(50 * 784, 93);
    const w = randomValues(784 * 200, 94);
    const rowBias = randomValues(200, 95);
    const perRow = randomValues(6, 96);
    const small = randomValues(2 * 6 * 4, 98);
    await expectNativeMatchesCpu(() => {
      const a = tf.tensor2d(x, [50, 784]);
      const b = tf.tensor2d(w, [784, 200]);
      const a3 = tf.tensor3d(small, [2, 6, 4]);
      const b3 = tf.tensor3d(randomValues(2 * 4 * 5, 99), [2, 4, 5]);
      return [
        tf.fused.matMul({ a, b, bias: tf.tensor1d(rowBias), activation: "relu" }),
        tf.fused.matMul({ a, b, bias: tf.tensor1d(rowBias) }),
        tf.fused.matMul({ a, b, activation: "relu" }),
        tf.fused.matMul({ a: a3, b: b3, bias: tf.tensor2d(perRow, [6, 1]), activation: "relu" }),
        tf.fused.matMul({ a: a3, b: b3, bias: tf.scalar(0.25) }),
      ];
    });
  });

  it("a dense layer's gradients (matmul, bias add, relu, sum) through tf.variableGrads", async () => {
    const xValues = randomValues(10 * 12, 100);
    const wValues = randomValues(12 * 7, 101);
    const bValues = randomValues(7, 102);
    await expectNativeMatchesCpu(() => {
      const x = tf.tensor2d(xValues, [10, 12]);
      const w = tf.variable(tf.tensor2d(wValues, [12, 7]), true, "w_native_test");
      const b = tf.variable(tf.tensor1d(bValues), true, "b_native_test");
      const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(tf.relu(tf.add(tf.matMul(x, w), b)))));
      const out = [value, grads["w_native_test"], grads["b_native_test"]];
      w.dispose();
      b.dispose();
      return out;
    });
  });

  const BROADCASTS: { a: number[]; b: number[] }[] = [
    { a: [4, 6], b: [4, 6] },
    { a: [4, 6], b: [] },
    { a: [], b: [3, 5] },
    { a: [2, 3, 4, 6], b: [6] },
    { a: [6], b: [2, 3, 6] },
    { a: [5, 4], b: [5, 1] },
    { a: [2, 3, 4], b: [3, 1] },
    { a: [300, 200], b: [300, 200] },
  ];
  const BINARY: [string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor][] = [
    ["add", tf.add],
    ["sub", tf.sub],
    ["mul", tf.mul],
    ["div", tf.div],
    ["maximum", tf.maximum],
    ["squaredDifference", tf.squaredDifference],
  ];

  for (const [name, op] of BINARY) {
    it(`${name} over ${BROADCASTS.length} broadcast patterns`, async () => {
      await expectNativeMatchesCpu(() =>
        BROADCASTS.map((c, index) => {
          const a = tf.tensor(randomValues(sizeOf(c.a), 110 + index, name === "div"), c.a);
          const b = tf.tensor(randomValues(sizeOf(c.b), 120 + index, name === "div"), c.b);
          return op(a, b);
        }),
      );
    });
  }

  it("unary ops: relu, step (alpha), neg, exp, log, square, sqrt, reciprocal", async () => {
    const signed = randomValues(3000, 130);
    signed[0] = 0;
    const positive = randomValues(3000, 131, true);
    await expectNativeMatchesCpu(() => {
      const x = tf.tensor2d(signed, [60, 50]);
      const p = tf.tensor2d(positive, [60, 50]);
      return [
        tf.relu(x),
        tf.step(x),
        tf.step(x, 0.25),
        tf.neg(x),
        tf.exp(x),
        tf.log(p),
        tf.square(x),
        tf.sqrt(p),
        tf.reciprocal(p),
      ];
    });
  });

  it("sum over contiguous and scattered axes, with and without keepDims", async () => {
    const values = randomValues(4 * 5 * 6 * 7, 140);
    await expectNativeMatchesCpu(() => {
      const x = tf.tensor4d(values, [4, 5, 6, 7]);
      return [tf.sum(x), tf.sum(x, [0, 1, 2]), tf.sum(x, -1), tf.sum(x, 1, true), tf.sum(x, [1, 2], true)];
    });
    // Scattered axes are the stock kernel's.
    await expectNativeMatchesCpu(() => [tf.sum(tf.tensor4d(values, [4, 5, 6, 7]), [0, 2])], true);
  });

  it("falls back to the stock kernel for int32, NCHW and broadcasts the addon does not index", async () => {
    const sum = tf.tidy(() => tf.add(tf.tensor1d([1, 2], "int32"), tf.tensor1d([3, 4], "int32")));
    expect(sum.dtype).toBe("int32");
    expect(Array.from(sum.dataSync())).toEqual([4, 6]);
    sum.dispose();
    const xValues = randomValues(2 * 3 * 5 * 5, 150);
    const wValues = randomValues(3 * 3 * 3 * 2, 151);
    await expectNativeMatchesCpu(
      () => [
        tf.conv2d(tf.tensor4d(xValues, [2, 3, 5, 5]), tf.tensor4d(wValues, [3, 3, 3, 2]), 1, "same", "NCHW"),
      ],
      true,
    );
    const aValues = randomValues(8, 152);
    const bValues = randomValues(3, 153);
    await expectNativeMatchesCpu(
      () => [tf.mul(tf.tensor3d(aValues, [2, 1, 4]), tf.tensor3d(bValues, [1, 3, 1]))],
      true,
    );
  });
});
