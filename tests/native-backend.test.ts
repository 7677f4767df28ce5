/**
 * The `native` backend around its kernels: loading the addon (and saying why not), the output-array pool,
 * backend selection, and training on native against cpu. Loader, pool and broadcast tests always run; the
 * training tests need the built addon (tests/native-kernels.test.ts fails in CI when it is missing).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { getFlatWeights, setFlatWeights } from "../common/models/tf-weights.js";
import { buildModel } from "../common/models/zoo.js";
import { loadAddon } from "../common/native/addon.js";
import { createRng } from "../common/rng.js";
import { initBackend, probeBackends } from "../common/tf/backend.js";
import {
  BUILD_REMEDY,
  NATIVE_BACKEND,
  nativeFallbackCounts,
  nativeStatus,
  registerNativeBackend,
  setNativeThreads,
} from "../common/tf/native.js";
import { Float32Pool, type NativeBackend } from "../common/tf/native-backend.js";
import { broadcastInner } from "../common/tf/native-kernel-util.js";
import { type TrainData, trainLocal } from "../common/train/trainer.js";
import { bitEqual } from "./helpers/fuzz.js";

const scratch = mkdtempSync(path.join(tmpdir(), "fedsim-native-"));
const missingAddon = path.join(scratch, "no-such-dir", "fedsim_native.node");

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

async function withEnv<T>(name: string, value: string, run: () => Promise<T>): Promise<T> {
  const saved = process.env[name];
  process.env[name] = value;
  try {
    return await run();
  } finally {
    if (saved === undefined) delete process.env[name];
    else process.env[name] = saved;
  }
}

describe("loading the addon", () => {
  // These tests point the loader at chosen files; a developer's FEDSIM_DISABLE_NATIVE=1 must not mask them.
  const disabled = process.env["FEDSIM_DISABLE_NATIVE"];
  beforeAll(() => {
    delete process.env["FEDSIM_DISABLE_NATIVE"];
  });
  afterAll(() => {
    if (disabled !== undefined) process.env["FEDSIM_DISABLE_NATIVE"] = disabled;
  });

  it("a missing file gives a one-line reason naming the path and the remedy", () => {
    const status = nativeStatus(missingAddon);
    expect(status.available).toBe(false);
    expect(status.reason).toContain("not built");
    expect(status.reason).toContain(missingAddon);
    expect(status.reason).toContain(BUILD_REMEDY);
    expect(status.reason).not.toContain("\n");
  });

  it("a file that is not a loadable addon says it failed to load", () => {
    const bogus = path.join(scratch, "bogus.node");
    writeFileSync(bogus, "not an ELF file");
    const result = loadAddon(bogus);
    expect(result.addon).toBeUndefined();
    expect(result.addon === undefined && result.reason).toMatch(
      /failed to load: .*\(rebuild it: npm run build:native\)/,
    );
  });

  it("FEDSIM_DISABLE_NATIVE=1 turns the addon off", async () => {
    await withEnv("FEDSIM_DISABLE_NATIVE", "1", async () => {
      const result = loadAddon(path.join(scratch, "whatever.node"));
      expect(result.addon === undefined && result.reason).toBe("disabled by FEDSIM_DISABLE_NATIVE=1");
    });
  });

  it("registering or setting threads without the addon throws BACKEND_UNAVAILABLE", () => {
    for (const attempt of [
      () => registerNativeBackend(missingAddon),
      () => setNativeThreads(1, missingAddon),
    ]) {
      try {
        attempt();
        expect.unreachable("expected a BACKEND_UNAVAILABLE error");
      } catch (err) {
        expect(err).toBeInstanceOf(FedsimError);
        expect((err as FedsimError).code).toBe(ErrorCode.BACKEND_UNAVAILABLE);
        expect((err as FedsimError).message).toContain(BUILD_REMEDY);
      }
    }
  });

  it("a forced native backend without the addon fails with the remedy; probes and auto skip it", async () => {
    await withEnv("FEDSIM_NATIVE_ADDON", missingAddon, async () => {
      await initBackend("cpu");
      try {
        await initBackend("native");
        expect.unreachable("expected BACKEND_UNAVAILABLE");
      } catch (err) {
        expect((err as FedsimError).code).toBe(ErrorCode.BACKEND_UNAVAILABLE);
        expect((err as FedsimError).message).toContain(BUILD_REMEDY);
      }
      expect(tf.getBackend()).toBe("cpu");
      const probe = (await probeBackends()).find((p) => p.backend === "native");
      expect(probe).toMatchObject({ available: false });
      expect(probe?.reason).toContain("not built");
      const lines: string[] = [];
      const auto = await initBackend("auto", (line) => lines.push(line));
      expect(auto.name).toBe("wasm");
      expect(auto.skipped.map((s) => s.backend)).toContain("native");
      expect(lines[0]).toMatch(/native: not built: /);
    });
  });
});

describe("broadcastInner", () => {
  it.each([
    [[4, 6], [4, 6], 1],
    [[], [4, 6], 1],
    [[6], [2, 4, 6], 1],
    [[5, 1], [5, 4], 4],
    [[3, 1], [2, 3, 4], 4],
    [[1, 3, 1], [2, 3, 4], 4],
    [[2, 1, 4], [2, 3, 4], null],
    [[3, 4, 1], [1, 3, 4, 5], 5],
  ])("%j in %j -> %j", (shape, outShape, inner) => {
    expect(broadcastInner(shape, outShape)).toBe(inner);
  });
});

describe("Float32Pool", () => {
  const LENGTH = 10_000;

  it("reuses an array once the tensor holding it is released", () => {
    const pool = new Float32Pool();
    const first = pool.allocate(LENGTH);
    pool.noteStored(first);
    pool.noteReleased(first);
    expect(pool.allocate(LENGTH)).toBe(first);
    expect(pool.stats).toMatchObject({ allocated: 1, reused: 1 });
  });

  it("never recycles an array that was read out, stored twice, or viewed", () => {
    const pool = new Float32Pool();
    const read = pool.allocate(LENGTH);
    pool.noteStored(read);
    pool.noteRead(read);
    pool.noteReleased(read);
    const shared = pool.allocate(LENGTH);
    pool.noteStored(shared);
    pool.noteStored(shared);
    pool.noteReleased(shared);
    const viewed = pool.allocate(LENGTH);
    pool.noteStored(viewed);
    pool.noteStored(viewed.subarray(10, 20));
    pool.noteReleased(viewed);
    const next = pool.allocate(LENGTH);
    expect([read, shared, viewed]).not.toContain(next);
    expect(pool.stats.pinned).toBe(3);
  });

  it("leaves small arrays and arrays it did not issue alone", () => {
    const pool = new Float32Pool();
    const small = pool.allocate(16);
    pool.noteStored(small);
    pool.noteReleased(small);
    const foreign = new Float32Array(LENGTH);
    pool.noteStored(foreign);
    pool.noteReleased(foreign);
    expect(pool.allocate(16)).not.toBe(small);
    expect(pool.allocate(LENGTH)).not.toBe(foreign);
  });
});

function randomData(n: number, shape: number[], seed: number): TrainData {
  const rng = createRng(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  return {
    x: Float32Array.from({ length: n * size }, () => rng.next()),
    y: Int32Array.from({ length: n }, () => rng.int(10)),
    n,
    exampleShape: shape,
    numClasses: 10,
  };
}

async function trainedWeights(backend: "native" | "cpu", data: TrainData): Promise<Float32Array> {
  await initBackend(backend);
  const model = buildModel("tiny-cnn", { inputShape: data.exampleShape, numClasses: 10, seed: 5 });
  try {
    await trainLocal(model, data, { epochs: 1, batchSize: 4, learningRate: 0.1, seed: 9, maxSteps: 3 });
    return getFlatWeights(model).values.slice();
  } finally {
    model.dispose();
  }
}

describe.runIf(nativeStatus().available)("training on the native backend", () => {
  afterAll(async () => {
    await initBackend("wasm");
  });

  it("three CNN steps give the cpu backend's weights", async () => {
    const data = randomData(12, [12, 12, 1], 1);
    const fallbacksBefore = [...nativeFallbackCounts().values()].reduce((a, b) => a + b, 0);
    const onNative = await trainedWeights("native", data);
    expect([...nativeFallbackCounts().values()].reduce((a, b) => a + b, 0)).toBe(fallbacksBefore);
    const onCpu = await trainedWeights("cpu", data);
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < onCpu.length; i++) {
      diff = Math.max(diff, Math.abs(onNative[i] - onCpu[i]));
      scale = Math.max(scale, Math.abs(onCpu[i]));
    }
    expect(diff / scale).toBeLessThanOrEqual(1e-4);
  });

  it("keeps the tensor count flat over training steps and recycles output arrays", async () => {
    await initBackend("native");
    const backend = tf.findBackend(NATIVE_BACKEND) as NativeBackend;
    const data = randomData(40, [28, 28, 1], 2);
    const model = buildModel("mnist-cnn", { inputShape: [28, 28, 1], numClasses: 10, seed: 5 });
    // The tfjs path's tensors and pool are under test: the fast path (which takes this CNN) is switched off.
    const previousFastPath = process.env["FEDSIM_FAST_PATH"];
    process.env["FEDSIM_FAST_PATH"] = "0";
    try {
      const options = { epochs: 10, batchSize: 10, learningRate: 0.01, seed: 9 };
      await trainLocal(model, data, { ...options, maxSteps: 1 });
      const tensorsAfterOne = tf.memory().numTensors;
      const reusedBefore = backend.pool.stats.reused;
      await trainLocal(model, data, { ...options, maxSteps: 4 });
      expect(tf.memory().numTensors).toBe(tensorsAfterOne);
      expect(backend.pool.stats.reused).toBeGreaterThan(reusedBefore);
    } finally {
      model.dispose();
      if (previousFastPath === undefined) delete process.env["FEDSIM_FAST_PATH"];
      else process.env["FEDSIM_FAST_PATH"] = previousFastPath;
    }
  });

  it("weights shared into the model (shareValues) are neither written nor recycled by training", async () => {
    await initBackend("native");
    const data = randomData(30, [28, 28, 1], 3);
    const source = buildModel("mnist-cnn", { inputShape: [28, 28, 1], numClasses: 10, seed: 6 });
    const model = buildModel("mnist-cnn", { inputShape: [28, 28, 1], numClasses: 10, seed: 7 });
    try {
      const shared = getFlatWeights(source);
      const pristine = shared.values.slice();
      for (let fit = 0; fit < 2; fit++) {
        setFlatWeights(model, shared, { shareValues: true });
        await trainLocal(model, data, {
          epochs: 1,
          batchSize: 10,
          learningRate: 0.05,
          seed: fit,
          maxSteps: 3,
        });
        // Other tensors of the same sizes come and go meanwhile: none may land in the shared array.
        tf.dispose(tf.tidy(() => model.predict(tf.zeros([10, 28, 28, 1])) as tf.Tensor));
        // bitEqual, not toEqual: a deep comparison of 1.66M elements takes seconds.
        expect(bitEqual(getFlatWeights(model).values, pristine)).toBe(false);
        expect(bitEqual(shared.values, pristine)).toBe(true);
      }
    } finally {
      source.dispose();
      model.dispose();
    }
  });

  it("an array read with dataSync survives its tensor's disposal", async () => {
    await initBackend("native");
    const input = tf.tensor1d(Float32Array.from({ length: 20_000 }, (_, i) => i - 10_000));
    const relu = tf.relu(input);
    const read = relu.dataSync() as Float32Array;
    const copy = read.slice();
    relu.dispose();
    const others = Array.from({ length: 3 }, () => tf.neg(input));
    expect(read).toEqual(copy);
    tf.dispose([input, ...others]);
  });

  it("signals arriving during oneDNN's sgemm do not corrupt the heap (oneDNN issue #4845)", () => {
    // A 20 kHz CPU profiler interrupts the JIT gemm thousands of times; without the addon's signal mask
    // glibc aborts with "corrupted size vs. prev_size" within a second.
    const script = `
      const addon = require(${JSON.stringify(nativeStatus().path)});
      const a = new Float32Array(10 * 784), b = new Float32Array(784 * 200), c = new Float32Array(2000);
      const until = Date.now() + 1500;
      let calls = 0;
      while (Date.now() < until) {
        addon.matmul(a, b, c, 1, 1, 10, 200, 784, false, false, null, 1, false);
        const scratch = new Float32Array(1000 + (calls++ % 50));
        scratch[0] = 1;
      }
      console.log("ok " + calls);`;
    const child = spawnSync(
      process.execPath,
      ["--cpu-prof", "--cpu-prof-interval", "50", "--cpu-prof-dir", scratch, "-e", script],
      { encoding: "utf8", timeout: 60_000 },
    );
    expect(child.stderr).not.toMatch(/corrupted|double free|invalid pointer/);
    expect(child.status).toBe(0);
    expect(child.stdout).toMatch(/^ok \d+/);
  });

  it("setNativeThreads accepts a thread count and rejects a bad one", () => {
    setNativeThreads(1);
    expect(nativeStatus().threads).toBe(1);
    setNativeThreads(2);
    expect(() => setNativeThreads(0)).toThrow(/threads must be a positive integer/);
    expect(tf.getBackend()).toBe(NATIVE_BACKEND);
  });
});
