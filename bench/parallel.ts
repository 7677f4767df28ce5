import { type ChildProcess, fork } from "node:child_process";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ErrorCode, FedsimError } from "../common/errors.js";
import type { ParentMessage, WorkerConfig, WorkerMessage } from "./parallel-worker.js";
import { median, sig } from "./timing.js";

/**
 * Parallelism: two sampled clients training at once, each in its own process with its own
 * backend (as `fedsim run` hosts clients in one pool process per core), against one client
 * training alone. The rate of a pair is both clients' examples over the wall time from the first
 * start to the last end, so a process that finishes late counts against it.
 */
export interface ParallelSection {
  /** twoClientsExamplesPerSec ÷ oneClientExamplesPerSec; 2 = perfect on 2 cores, goal ≥ 1.8. */
  speedup: number | null;
  oneClientExamplesPerSec: number | null;
  twoClientsExamplesPerSec: number | null;
  /** The backend each process loaded (auto, as `fedsim run` picks it). */
  backend: string;
  model: string;
  batch: number;
  stepsPerClient: number;
  repeats: number;
  cores: number;
  /** Cores kept busy (CPU seconds ÷ wall seconds, medians): ~1 alone and ~2 together on an idle 2-core machine. */
  coresUsed: { one: number | null; two: number | null };
  /** FEDSIM_NATIVE_THREADS of each process: cores ÷ 2, as each of 2 pool processes should use (native backend only). */
  threadsPerProcess: number;
}

/** One process's timed run: examples trained and its wall-clock window (ms since the epoch). */
export interface TimedRun {
  examples: number;
  start: number;
  end: number;
  /** CPU seconds the process used meanwhile (all threads), when known. */
  cpuSeconds?: number;
}

/**
 * Cores the runs kept busy on average: their CPU seconds over the shared window. On an idle
 * 2-core machine about 1 for one single-threaded process and 2 for two; well below means other
 * processes took the cores, and the speedup says more about the machine's load than about fedsim.
 */
export function coresUsed(runs: readonly TimedRun[]): number | null {
  if (runs.length === 0 || runs.some((r) => r.cpuSeconds === undefined)) return null;
  const start = Math.min(...runs.map((r) => r.start));
  const end = Math.max(...runs.map((r) => r.end));
  if (!(end > start)) return null;
  return runs.reduce((sum, r) => sum + (r.cpuSeconds ?? 0), 0) / ((end - start) / 1000);
}

/** Examples per second of runs that went on at the same time: all examples over the whole window. */
export function combinedThroughput(runs: readonly TimedRun[]): number {
  if (runs.length === 0) throw new FedsimError(ErrorCode.INVALID_CONFIG, "runs must not be empty");
  for (const [i, r] of runs.entries()) {
    if (!(r.end > r.start) || !(r.examples >= 0)) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `runs[${i}] needs end > start and examples ≥ 0, got ${JSON.stringify(r)}`,
      );
    }
  }
  const start = Math.min(...runs.map((r) => r.start));
  const end = Math.max(...runs.map((r) => r.end));
  const examples = runs.reduce((sum, r) => sum + r.examples, 0);
  return examples / ((end - start) / 1000);
}

const MODEL = "mnist-cnn";
const BATCH = 10;

function workerScript(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const script = path.join(here, "parallel-worker.js");
  if (!existsSync(script)) throw new Error(`${script} is missing: build first (npm run build)`);
  return script;
}

class Worker {
  private readonly child: ChildProcess;
  private pending: ((message: WorkerMessage) => void) | null = null;
  readonly ready: Promise<Extract<WorkerMessage, { type: "ready" }>>;

  constructor(script: string, config: WorkerConfig, threads: number) {
    this.child = fork(script, [], {
      // A pool process of N should use cores/N threads (common/tf/native.ts); wasm and cpu use one anyway.
      env: {
        ...process.env,
        FEDSIM_BENCH_WORKER: JSON.stringify(config),
        FEDSIM_NATIVE_THREADS: String(threads),
      },
      stdio: ["ignore", "ignore", "inherit", "ipc"],
    });
    this.ready = new Promise((resolve, reject) => {
      this.pending = (m) => (m.type === "ready" ? resolve(m) : reject(new Error(describe(m))));
    });
    this.child.on("message", (m: WorkerMessage) => this.deliver(m));
    // A process that dies fails whatever it was doing instead of leaving it waiting.
    this.child.on("exit", (code, signal) =>
      this.deliver({ type: "error", message: `training process exited with ${code ?? signal}` }),
    );
  }

  private deliver(message: WorkerMessage): void {
    const pending = this.pending;
    this.pending = null;
    pending?.(message);
  }

  run(steps: number, seed: number): Promise<TimedRun> {
    return new Promise((resolve, reject) => {
      this.pending = (m) => (m.type === "done" ? resolve(m) : reject(new Error(describe(m))));
      this.child.send({ type: "run", steps, seed } satisfies ParentMessage);
    });
  }

  close(): void {
    if (this.child.exitCode !== null) return;
    if (this.child.connected) this.child.send({ type: "exit" } satisfies ParentMessage);
    const child = this.child;
    setTimeout(() => {
      if (child.exitCode === null) child.kill("SIGKILL");
    }, 5000).unref();
  }
}

function describe(m: WorkerMessage): string {
  return m.type === "error" ? m.message : `unexpected message ${m.type}`;
}

export async function runParallel(options: {
  quick: boolean;
  log: (line: string) => void;
}): Promise<ParallelSection> {
  const { quick, log } = options;
  const repeats = quick ? 1 : 3;
  const budgetSeconds = quick ? 1.5 : 4;
  const script = workerScript();
  const config = (seed: number): WorkerConfig => ({
    model: MODEL,
    batch: BATCH,
    backend: "auto",
    warmupSteps: 4,
    seed,
  });
  const cores = os.availableParallelism?.() ?? os.cpus().length;
  const threads = Math.max(1, Math.floor(cores / 2));
  const workers = [new Worker(script, config(1), threads), new Worker(script, config(2), threads)];
  try {
    const ready = await Promise.all(workers.map((w) => w.ready));
    const backend = ready[0].backend;
    const secondsPerStep = Math.max(...ready.map((r) => r.secondsPerStep));
    const steps = Math.max(5, Math.min(1000, Math.round(budgetSeconds / secondsPerStep)));
    log(`parallel: ${MODEL} batch ${BATCH} on ${backend}, ${steps} steps per client, ${repeats} repeat(s)…`);
    const one: TimedRun[][] = [];
    const two: TimedRun[][] = [];
    for (let r = 0; r < repeats; r++) {
      // Alternating the order keeps a drifting machine load from favouring either side.
      const alone = async () => one.push([await workers[r % 2].run(steps, 100 + r)]);
      const pair = async () =>
        two.push(await Promise.all(workers.map((w, i) => w.run(steps, 200 + 2 * r + i))));
      if (r % 2 === 0) {
        await alone();
        await pair();
      } else {
        await pair();
        await alone();
      }
      log(
        `  one ${combinedThroughput(one[r]).toFixed(1)} ex/s on ${coresUsed(one[r])?.toFixed(2) ?? "?"} cores, ` +
          `two ${combinedThroughput(two[r]).toFixed(1)} ex/s on ${coresUsed(two[r])?.toFixed(2) ?? "?"} cores`,
      );
    }
    const oneRate = median(one.map(combinedThroughput));
    const twoRate = median(two.map(combinedThroughput));
    const medianCores = (runs: TimedRun[][]) => {
      const used = runs.map(coresUsed);
      return used.every((u) => u !== null) ? sig(median(used as number[]), 3) : null;
    };
    return {
      speedup: sig(twoRate / oneRate, 3),
      oneClientExamplesPerSec: sig(oneRate),
      twoClientsExamplesPerSec: sig(twoRate),
      backend,
      model: MODEL,
      batch: BATCH,
      stepsPerClient: steps,
      repeats,
      cores,
      coresUsed: { one: medianCores(one), two: medianCores(two) },
      threadsPerProcess: threads,
    };
  } finally {
    for (const w of workers) w.close();
  }
}
