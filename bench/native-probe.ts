/**
 * Training throughput of the `native` backend against wasm and the PyTorch reference, in one run.
 *
 *   npx tsc -p tsconfig.build.json && node dist/bench/native-probe.js [--profile] [--no-torch] [--once]
 *     [--backends native,wasm] [--threads 1,2]
 *
 * Trains mnist-2nn and mnist-cnn with fedsim's own trainer (SGD, batch 10 and 50) on random 28x28 inputs
 * (throughput does not depend on the pixel values), and prints examples/s per backend with the ratio to
 * PyTorch. --profile adds, per case on native, the time spent in each kernel over a few profiled steps.
 * Like the PyTorch reference (best of 1 and all cores), native runs with each of --threads and keeps the best.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as tf from "@tensorflow/tfjs";
import { buildModel, type ModelName } from "../common/models/zoo.js";
import { createRng } from "../common/rng.js";
import { type BackendPreference, initBackend } from "../common/tf/backend.js";
import { setNativeThreads } from "../common/tf/native.js";
import { type TrainData, trainLocal } from "../common/train/trainer.js";
import { runTorchReference, type TorchReference } from "./references/torch-reference.js";

const CASES: ReadonlyArray<{ model: ModelName; batch: number; steps: number }> = [
  { model: "mnist-2nn", batch: 10, steps: 300 },
  { model: "mnist-2nn", batch: 50, steps: 120 },
  { model: "mnist-cnn", batch: 10, steps: 40 },
  { model: "mnist-cnn", batch: 50, steps: 16 },
];
const EXAMPLES = 2000;
const LEARNING_RATE = 0.01;

function randomData(): TrainData {
  const rng = createRng(7);
  const x = Float32Array.from({ length: EXAMPLES * 784 }, () => rng.next());
  const y = Int32Array.from({ length: EXAMPLES }, () => rng.int(10));
  return { x, y, n: EXAMPLES, exampleShape: [28, 28, 1], numClasses: 10 };
}

/** Best of three timed runs after a warm-up, in examples/s. */
async function examplesPerSecond(
  model: ModelName,
  batch: number,
  steps: number,
  data: TrainData,
): Promise<number> {
  const net = buildModel(model, { inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
  try {
    const options = { epochs: 1000, batchSize: batch, learningRate: LEARNING_RATE, seed: 3 };
    await trainLocal(net, data, { ...options, maxSteps: 5 });
    let best = 0;
    for (let repeat = 0; repeat < 3; repeat++) {
      const result = await trainLocal(net, data, { ...options, maxSteps: steps });
      best = Math.max(best, (result.steps * batch) / result.seconds);
    }
    return best;
  } finally {
    net.dispose();
  }
}

/** Milliseconds per step spent in each kernel, over `steps` profiled steps (tf.profile adds some overhead). */
async function kernelProfile(
  model: ModelName,
  batch: number,
  data: TrainData,
  steps: number,
): Promise<string> {
  const net = buildModel(model, { inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
  const options = { epochs: 1000, batchSize: batch, learningRate: LEARNING_RATE, seed: 3 };
  await trainLocal(net, data, { ...options, maxSteps: 3 });
  const totals = new Map<string, number>();
  const info = await tf.profile(async () => {
    await trainLocal(net, data, { ...options, maxSteps: steps });
  });
  for (const kernel of info.kernels) {
    const ms = typeof kernel.kernelTimeMs === "number" ? kernel.kernelTimeMs : 0;
    totals.set(kernel.name, (totals.get(kernel.name) ?? 0) + ms / steps);
  }
  net.dispose();
  const total = [...totals.values()].reduce((a, b) => a + b, 0);
  const top = [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, 14);
  return `: kernels ${total.toFixed(1)} ms/step: ${top.map(([name, ms]) => `${name} ${ms.toFixed(2)}`).join(", ")}`;
}

async function torchReference(data: TrainData, cases: typeof CASES): Promise<TorchReference> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "fedsim-native-probe-"));
  try {
    const images = path.join(dir, "images.f32");
    const labels = path.join(dir, "labels.i32");
    writeFileSync(images, new Uint8Array(data.x.buffer));
    writeFileSync(labels, new Uint8Array(data.y.buffer));
    return await runTorchReference({
      imagesFile: images,
      labelsFile: labels,
      threads: [1, os.availableParallelism()],
      learningRate: LEARNING_RATE,
      cases: cases.map((c) => ({ model: c.model, batch: c.batch, steps: c.steps, warmup: 5, repeats: 3 })),
      timeoutMs: 600_000,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Each case runs PyTorch, then every backend, back to back, and the whole sweep twice keeping each
 * figure's best: on a shared machine the load changes by the minute, and neighbours in time see similar load.
 */
async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const profile = argv.includes("--profile");
  const withTorch = !argv.includes("--no-torch");
  const backendsArg = argv[argv.indexOf("--backends") + 1];
  const backends = (
    argv.includes("--backends") ? backendsArg.split(",") : ["native", "wasm"]
  ) as BackendPreference[];
  const rounds = argv.includes("--once") ? 1 : 2;
  const threadsArg = argv.includes("--threads")
    ? argv[argv.indexOf("--threads") + 1]
    : `1,${os.availableParallelism()}`;
  const threadCounts = threadsArg.split(",").map((t) => Number.parseInt(t, 10));
  const data = randomData();
  const best = new Map<string, number>();
  const keep = (key: string, value: number) => best.set(key, Math.max(best.get(key) ?? 0, value));
  for (let round = 0; round < rounds; round++) {
    for (const c of CASES) {
      if (withTorch) {
        const torch = await torchReference(data, [c]);
        if (!torch.available) process.stdout.write(`PyTorch reference: ${torch.reason}\n`);
        const rate = torch.results[0]?.examplesPerSec;
        if (rate !== undefined) keep(`torch ${c.model} ${c.batch}`, rate);
        if (round === 0 && c === CASES[0])
          process.stdout.write(`PyTorch reference: ${torch.torch}, ${torch.openblasConfig}\n`);
      }
      for (const backend of backends) {
        try {
          await initBackend(backend);
        } catch (err) {
          if (round === 0 && c === CASES[0])
            process.stdout.write(`backend ${backend}: ${(err as Error).message}\n`);
          continue;
        }
        for (const threads of backend === "native" ? threadCounts : [0]) {
          if (threads > 0) setNativeThreads(threads);
          const rate = await examplesPerSecond(c.model, c.batch, c.steps, data);
          keep(`${backend} ${c.model} ${c.batch}`, rate);
          if (threads > 0) keep(`native/${threads} ${c.model} ${c.batch}`, rate);
        }
        if (profile && backend === "native" && round === 0) {
          process.stdout.write(`${c.model} b${c.batch}${await kernelProfile(c.model, c.batch, data, 5)}\n`);
        }
      }
    }
  }
  for (const c of CASES) {
    const reference = best.get(`torch ${c.model} ${c.batch}`);
    const cells = backends.map((backend) => {
      const rate = best.get(`${backend} ${c.model} ${c.batch}`);
      if (rate === undefined) return `${backend} n/a`;
      const ratio = reference === undefined ? "" : ` (${(rate / reference).toFixed(2)}x)`;
      return `${backend} ${rate.toFixed(0)}${ratio}`;
    });
    const torchCell = reference === undefined ? "" : `PyTorch ${reference.toFixed(0)}, `;
    if (backends.includes("native")) {
      const perThreads = threadCounts.map(
        (t) => `${t}: ${best.get(`native/${t} ${c.model} ${c.batch}`)?.toFixed(0)}`,
      );
      cells.push(`native by threads ${perThreads.join(", ")}`);
    }
    process.stdout.write(`${c.model} b${c.batch}: ${torchCell}${cells.join(", ")} ex/s\n`);
  }
}

await main();
