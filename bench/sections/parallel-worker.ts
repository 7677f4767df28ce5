/**
 * One training process of the parallelism section (bench/sections/parallel.ts forks two of these): its own
 * TensorFlow.js backend, model and data, like one pool process of `fedsim run`. It warms up, says
 * "ready" with its per-step time, then trains the number of steps each "run" message asks for and
 * answers with the examples trained and the wall-clock window, in ms since the epoch.
 */
import { loadEmbeddedMnist } from "../../common/data/mnist.js";
import { buildModel, isModelName } from "../../common/models/zoo.js";
import { type BackendPreference, initBackend } from "../../common/tf/backend.js";
import { trainLocal } from "../../common/train/trainer.js";
import { errorMessage } from "../timing.js";

export interface WorkerConfig {
  model: string;
  batch: number;
  backend: BackendPreference;
  warmupSteps: number;
  seed: number;
}

export type ParentMessage = { type: "run"; steps: number; seed: number } | { type: "exit" };

export type WorkerMessage =
  | { type: "ready"; backend: string; secondsPerStep: number }
  /** cpuSeconds: CPU time of the whole process (all its threads) during the run. */
  | { type: "done"; examples: number; start: number; end: number; cpuSeconds: number }
  | { type: "error"; message: string };

const now = () => performance.timeOrigin + performance.now();

function send(message: WorkerMessage): void {
  process.send?.(message);
}

async function main(): Promise<void> {
  const config = JSON.parse(process.env["FEDSIM_BENCH_WORKER"] ?? "{}") as WorkerConfig;
  if (!isModelName(config.model)) throw new Error(`unknown model "${config.model}"`);
  const info = await initBackend(config.backend);
  const { train } = loadEmbeddedMnist();
  const model = buildModel(config.model, {
    inputShape: train.exampleShape,
    numClasses: train.numClasses,
    seed: config.seed,
  });
  const base = { epochs: 1_000_000, batchSize: config.batch, learningRate: 0.01 };
  const stepEnds: number[] = [];
  await trainLocal(model, train, {
    ...base,
    seed: config.seed,
    maxSteps: Math.max(2, config.warmupSteps),
    onBatch: () => stepEnds.push(performance.now()),
  });
  // The first step carries one-off costs; the per-step time is judged from the ones after it.
  const secondsPerStep = (stepEnds[stepEnds.length - 1] - stepEnds[0]) / 1000 / (stepEnds.length - 1);
  process.on("message", (message: ParentMessage) => {
    if (message.type === "exit") {
      model.dispose();
      process.exit(0);
    }
    void (async () => {
      try {
        const cpu = process.cpuUsage();
        const start = now();
        const result = await trainLocal(model, train, {
          ...base,
          seed: message.seed,
          maxSteps: message.steps,
        });
        const end = now();
        const used = process.cpuUsage(cpu);
        const cpuSeconds = (used.user + used.system) / 1e6;
        send({ type: "done", examples: result.steps * config.batch, start, end, cpuSeconds });
      } catch (err) {
        send({ type: "error", message: errorMessage(err) });
      }
    })();
  });
  send({ type: "ready", backend: info.name, secondsPerStep });
}

main().catch((err: unknown) => {
  send({ type: "error", message: errorMessage(err) });
  process.exit(1);
});
