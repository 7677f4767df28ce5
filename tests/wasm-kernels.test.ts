import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { createRng } from "../common/rng.js";
import { initBackend } from "../common/tf/backend.js";
import { isFedsimKernel } from "../common/tf/wasm-kernel-calls.js";
import {
  activeWasmTrainingKernels,
  registerWasmTrainingKernels,
  restoreStockWasmKernels,
} from "../common/tf/wasm-kernels.js";
import { prefersTransposedProduct } from "../common/tf/wasm-matmul-kernels.js";
import { randomValues, relativeError, sizeOf } from "./helpers/kernel-compare.js";

const TOLERANCE = 1e-5;

beforeAll(async () => {
  await initBackend("wasm");
});

/** Runs `compute` on one backend and copies its outputs out, leaving the wasm backend active afterwards. */
async function outputsOn(backend: "wasm" | "cpu", compute: () => tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  try {
    const tensors = tf.tidy(compute);
    const values = tensors.map((t) => t.dataSync() as Float32Array);
    tf.dispose(tensors);
    return values;
  } finally {
    await tf.setBackend("wasm");
  }
}

async function expectSameOnWasmAndCpu(compute: () => tf.Tensor[]): Promise<void> {
  const fromWasm = await outputsOn("wasm", compute);
  const fromCpu = await outputsOn("cpu", compute);
  expect(fromWasm.length).toBe(fromCpu.length);
  fromWasm.forEach((values, i) => {
    expect(relativeError(values, fromCpu[i])).toBeLessThanOrEqual(TOLERANCE);
  });
}

interface ConvCase {
  batch: number;
  height: number;
  width: number;
  inChannels: number;
  outChannels: number;
  kernel: [number, number];
  stride: number;
  pad: "same" | "valid" | tf.backend_util.ExplicitPadding;
}

const CONV_CASES: ConvCase[] = [
  { batch: 1, height: 5, width: 5, inChannels: 1, outChannels: 2, kernel: [1, 1], stride: 1, pad: "same" },
  { batch: 2, height: 7, width: 7, inChannels: 3, outChannels: 4, kernel: [3, 3], stride: 1, pad: "same" },
  { batch: 3, height: 9, width: 8, inChannels: 2, outChannels: 8, kernel: [5, 5], stride: 1, pad: "valid" },
  { batch: 4, height: 8, width: 8, inChannels: 8, outChannels: 3, kernel: [3, 3], stride: 2, pad: "same" },
  // Valid padding whose stride leaves the last column (and row) of x unused: the filter gradient crops them.
  { batch: 2, height: 9, width: 10, inChannels: 1, outChannels: 5, kernel: [5, 5], stride: 2, pad: "valid" },
  { batch: 1, height: 8, width: 8, inChannels: 4, outChannels: 2, kernel: [3, 3], stride: 2, pad: "valid" },
  { batch: 3, height: 6, width: 7, inChannels: 5, outChannels: 6, kernel: [1, 1], stride: 2, pad: "same" },
  { batch: 2, height: 6, width: 6, inChannels: 2, outChannels: 3, kernel: [3, 5], stride: 1, pad: "same" },
  {
    batch: 2,
    height: 6,
    width: 5,
    inChannels: 2,
    outChannels: 3,
    kernel: [3, 3],
    stride: 1,
    pad: [
      [0, 0],
      [1, 2],
      [2, 0],
      [0, 0],
    ],
  },
  {
    batch: 1,
    height: 7,
    width: 7,
    inChannels: 3,
    outChannels: 2,
    kernel: [3, 3],
    stride: 2,
    pad: [
      [0, 0],
      [0, 1],
      [1, 1],
      [0, 0],
    ],
  },
];

function describeCase(c: ConvCase): string {
  const pad = typeof c.pad === "string" ? c.pad : `explicit ${JSON.stringify(c.pad.slice(1, 3))}`;
  return `b${c.batch} ${c.height}x${c.width}x${c.inChannels}->${c.outChannels} k${c.kernel.join("x")} s${c.stride} ${pad}`;
}

/** Input and filter gradients of sum(conv2d(x, w) * upstream), so dy is not all ones. */
function convGradients(c: ConvCase, seed: number): () => tf.Tensor[] {
  const xShape = [c.batch, c.height, c.width, c.inChannels];
  const wShape = [c.kernel[0], c.kernel[1], c.inChannels, c.outChannels];
  const xValues = randomValues(sizeOf(xShape), seed);
  const wValues = randomValues(sizeOf(wShape), seed + 1);
  return () => {
    const x = tf.tensor4d(xValues, xShape as [number, number, number, number]);
    const w = tf.tensor4d(wValues, wShape as [number, number, number, number]);
    const forward = (xIn: tf.Tensor, wIn: tf.Tensor) =>
      tf.conv2d(xIn as tf.Tensor4D, wIn as tf.Tensor4D, c.stride, c.pad);
    const outShape = forward(x, w).shape;
    const upstream = tf.tensor(randomValues(sizeOf(outShape), seed + 2), outShape);
    return tf.grads(forward)([x, w], upstream);
  };
}

describe("wasm conv2d gradients match the cpu backend", () => {
  CONV_CASES.forEach((c, index) => {
    it(describeCase(c), async () => {
      await expectSameOnWasmAndCpu(convGradients(c, 100 + index * 10));
    });
  });

  it("uses fedsim's kernels for both gradients", () => {
    expect(isFedsimKernel(tf.getKernel(tf.Conv2DBackpropFilter, "wasm")?.kernelFunc)).toBe(true);
    expect(isFedsimKernel(tf.getKernel(tf.Conv2DBackpropInput, "wasm")?.kernelFunc)).toBe(true);
  });

  it("refuses NCHW filter gradients with a clear error", () => {
    const x = tf.zeros([1, 2, 4, 4]);
    const dy = tf.zeros([1, 3, 4, 4]);
    try {
      const attrs = { strides: 1, pad: "same", dataFormat: "NCHW", filterShape: [3, 3, 2, 3] };
      expect(() => tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, attrs)).toThrow(/NHWC/);
      try {
        tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy }, attrs);
      } catch (err) {
        expect(err).toBeInstanceOf(FedsimError);
        expect((err as FedsimError).code).toBe(ErrorCode.INCOMPATIBLE_OPTIONS);
      }
    } finally {
      tf.dispose([x, dy]);
    }
  });
});

const MATMUL_CASES: { a: number[]; b: number[]; transposeA: boolean; transposeB: boolean }[] = [
  { a: [5, 3], b: [5, 4], transposeA: true, transposeB: false },
  { a: [3, 5], b: [4, 5], transposeA: false, transposeB: true },
  { a: [5, 3], b: [4, 5], transposeA: true, transposeB: true },
  { a: [3, 5], b: [5, 4], transposeA: false, transposeB: false },
  { a: [2, 6, 3], b: [2, 6, 7], transposeA: true, transposeB: false },
  { a: [3, 4, 6], b: [3, 5, 6], transposeA: false, transposeB: true },
  { a: [1, 6, 3], b: [4, 2, 6], transposeA: true, transposeB: true },
  // Small M against a large N·K: computed as the transposed product (a Dense layer's input gradient).
  { a: [2, 6], b: [20, 6], transposeA: false, transposeB: true },
  { a: [1, 4, 6], b: [1, 9, 6], transposeA: false, transposeB: true },
  // Both flags with M ≥ 2K: computed by transposing both operands.
  { a: [2, 8], b: [5, 2], transposeA: true, transposeB: true },
];

describe("wasm matmul with transpose flags matches the cpu backend", () => {
  MATMUL_CASES.forEach((c, index) => {
    it(`${JSON.stringify(c.a)} x ${JSON.stringify(c.b)} tA=${c.transposeA} tB=${c.transposeB}`, async () => {
      const aValues = randomValues(sizeOf(c.a), 500 + index);
      const bValues = randomValues(sizeOf(c.b), 600 + index);
      await expectSameOnWasmAndCpu(() => [
        tf.matMul(tf.tensor(aValues, c.a), tf.tensor(bValues, c.b), c.transposeA, c.transposeB),
      ]);
    });
  });

  it("fused matmul with bias and relu, transposed operands", async () => {
    const aValues = randomValues(4 * 6, 700);
    const bValues = randomValues(5 * 6, 701);
    const biasValues = randomValues(5, 702);
    await expectSameOnWasmAndCpu(() => [
      tf.fused.matMul({
        a: tf.tensor2d(aValues, [6, 4]),
        b: tf.tensor2d(bValues, [5, 6]),
        transposeA: true,
        transposeB: true,
        bias: tf.tensor1d(biasValues),
        activation: "relu",
      }),
    ]);
  });

  it("dense-layer gradients (both transpose flags in back-prop)", async () => {
    const xValues = randomValues(6 * 4, 800);
    const wValues = randomValues(4 * 3, 801);
    await expectSameOnWasmAndCpu(() =>
      tf.grads((x: tf.Tensor, w: tf.Tensor) => tf.matMul(x, w).square().sum())([
        tf.tensor2d(xValues, [6, 4]),
        tf.tensor2d(wValues, [4, 3]),
      ]),
    );
  });
});

describe("matmul rewrite choice", () => {
  it("computes a small-batch dy·Wᵀ as (W·dyᵀ)ᵀ and xᵀ·dy by transposing x", () => {
    // Dense 3136→512 at batch 10: input gradient dy[10,512]·Wᵀ and weight gradient x[10,3136]ᵀ·dy.
    expect(prefersTransposedProduct(10, 512, 3136, false, true)).toBe(true);
    expect(prefersTransposedProduct(3136, 10, 512, true, false)).toBe(false);
    expect(prefersTransposedProduct(8, 2, 5, true, true)).toBe(false);
    expect(prefersTransposedProduct(3, 5, 4, true, true)).toBe(true);
  });
});

describe("registration", () => {
  it("is idempotent and keeps the same kernel functions", () => {
    const before = tf.getKernel(tf.BatchMatMul, "wasm").kernelFunc;
    const names = registerWasmTrainingKernels();
    expect(registerWasmTrainingKernels()).toEqual(names);
    expect(names).toEqual(["Conv2DBackpropFilter", "Conv2DBackpropInput", "BatchMatMul", "_FusedMatMul"]);
    expect(tf.getKernel(tf.BatchMatMul, "wasm").kernelFunc).toBe(before);
    expect(activeWasmTrainingKernels()).toEqual(names);
  });

  it("stock wasm cannot compute a filter gradient; restoring and re-registering round-trips", () => {
    const gradOfFilter = () =>
      tf.tidy(() =>
        tf.grad((w: tf.Tensor) =>
          tf.conv2d(tf.ones([1, 4, 4, 1]) as tf.Tensor4D, w as tf.Tensor4D, 1, "same").sum(),
        )(tf.ones([3, 3, 1, 1])),
      );
    try {
      restoreStockWasmKernels();
      expect(activeWasmTrainingKernels()).toEqual([]);
      expect(gradOfFilter).toThrow(/Conv2DBackpropFilter/);
    } finally {
      registerWasmTrainingKernels();
    }
    const grad = gradOfFilter();
    // Each tap of a 3x3 "same" filter on a 4x4 image of ones sees 3 or 4 rows times 3 or 4 columns.
    expect(Array.from(grad.dataSync())).toEqual([9, 12, 9, 12, 16, 12, 9, 12, 9]);
    grad.dispose();
  });
});

/** 8x8 images whose class is the brightest quadrant (of 3 used), plus noise. */
function quadrantBatch(n: number, seed: number): { x: tf.Tensor4D; y: tf.Tensor2D } {
  const rng = createRng(seed);
  const pixels = new Float32Array(n * 64);
  const labels = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) {
    const cls = i % 3;
    labels[i * 3 + cls] = 1;
    for (let r = 0; r < 8; r++) {
      for (let c = 0; c < 8; c++) {
        const quadrant = (r < 4 ? 0 : 2) + (c < 4 ? 0 : 1);
        pixels[i * 64 + r * 8 + c] = (quadrant === cls ? 1 : 0) + 0.3 * rng.normal();
      }
    }
  }
  return { x: tf.tensor4d(pixels, [n, 8, 8, 1]), y: tf.tensor2d(labels, [n, 3]) };
}

function smallCnn(): tf.Sequential {
  const model = tf.sequential();
  model.add(
    tf.layers.conv2d({
      inputShape: [8, 8, 1],
      filters: 4,
      kernelSize: 5,
      padding: "same",
      activation: "relu",
      kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }),
    }),
  );
  model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  model.add(tf.layers.flatten());
  model.add(
    tf.layers.dense({
      units: 3,
      activation: "softmax",
      kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }),
    }),
  );
  return model;
}

describe("CNN training on wasm", () => {
  it("takes gradient steps and the loss decreases over 20 steps", () => {
    expect(tf.getBackend()).toBe("wasm");
    const model = smallCnn();
    const { x, y } = quadrantBatch(12, 7);
    const optimizer = tf.train.sgd(0.5);
    const lossOf = () => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor2D) as tf.Scalar;
    const losses: number[] = [];
    for (let step = 0; step < 20; step++) {
      const loss = optimizer.minimize(lossOf, true);
      losses.push(loss!.dataSync()[0]);
      loss!.dispose();
    }
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[19]).toBeLessThan(0.7 * losses[0]);
    tf.dispose([x, y]);
    optimizer.dispose();
    model.dispose();
  });

  it("repeated gradient calls do not leak tensors or wasm buffers", () => {
    const model = smallCnn();
    const { x, y } = quadrantBatch(4, 9);
    const step = () => {
      const { value, grads } = tf.variableGrads(
        () => tf.losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor2D) as tf.Scalar,
      );
      value.dispose();
      tf.dispose(Object.values(grads));
    };
    step();
    const before = tf.memory();
    for (let i = 0; i < 5; i++) step();
    const after = tf.memory();
    expect(after.numTensors).toBe(before.numTensors);
    expect(after.numDataBuffers).toBe(before.numDataBuffers);
    tf.dispose([x, y]);
    model.dispose();
  });
});
