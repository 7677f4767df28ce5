import { type ChildProcess, fork } from "node:child_process";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadEmbeddedMnist } from "../../common/data/mnist.js";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { startTorchPair } from "../references/parallel-torch.js";
import { errorMessage, median, ratio, sig, type TimedRun, type TrainingProcess } from "../timing.js";
import type { ParentMessage, WorkerConfig, WorkerMessage } from "./parallel-worker.js";

/**
 * Parallelism: two sampled clients training at once, each in its own process with its own
 * backend (as `fedsim run` hosts clients in one pool process per core), against one client
 * training alone. The rate of a pair is both clients' examples over the wall time from the first
 * start to the last end, so a process that finishes late counts against it.
 *
 * Two processes never scale perfectly even with both cores busy: each runs slower per CPU second
 * while the other shares the caches and memory bandwidth. So PyTorch is measured the same way in
 * the same run (two single-threaded processes training the same CNN), saying what this machine
 * allows. Both sides take many short repeats, each timing alone and together back to back, and
 * report the median of the per-repeat ratios: a drift in the machine's speed cancels within a pair.
 */
export interface ParallelSection {
  /** Median of `speedups`; 2 = perfect on 2 cores, goal ≥ 1.8. */
  speedup: number | null;
  /** Each repeat's two-clients rate ÷ its one-client rate, in the order measured. */
  speedups: number[];
  speedupRange: { min: number; max: number } | null;
  /** Medians over the repeats. */
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
  /** The same protocol with PyTorch (bench/references/torch_parallel.py, 1 torch thread per process), or null. */
  pytorch: PytorchParallel | null;
  /** Why `pytorch` is null. */
  pytorchReason: string | null;
  /** speedup ÷ pytorch.speedup: 1 = fedsim scales as well as PyTorch does on this machine. */
  ratioToPytorch: number | null;
}

/** One side's paired measurements, summarised. */
export interface PairedSpeedup {
  /** Median of the per-repeat ratios two ÷ one. */
  speedup: number | null;
  speedups: number[];
  speedupRange: { min: number; max: number } | null;
  oneExamplesPerSec: number | null;
  twoExamplesPerSec: number | null;
  coresUsed: { one: number | null; two: number | null };
}

export interface PytorchParallel extends PairedSpeedup {
  torch: string | null;
  stepsPerProcess: number;
  threadsPerProcess: number;
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

/** numerators[i] ÷ denominators[i] for each i: the ratios of measurements taken back to back. */
export function pairedRatios(numerators: readonly number[], denominators: readonly number[]): number[] {
  if (numerators.length === 0 || numerators.length !== denominators.length) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `paired ratios need as many numerators as denominators, at least one: got ${numerators.length} and ${denominators.length}`,
    );
  }
  return numerators.map((n, i) => {
    const d = denominators[i];
    if (!(d > 0) || !(n >= 0) || !Number.isFinite(n) || !Number.isFinite(d)) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `pair ${i} needs finite values with a positive denominator, got ${n} ÷ ${d}`,
      );
    }
    return n / d;
  });
}

/** The smallest and largest value, or null for none. */
export function spread(values: readonly number[]): { min: number; max: number } | null {
  if (values.length === 0) return null;
  return { min: Math.min(...values), max: Math.max(...values) };
}

/**
 * Summarises repeats where one[r] (a process alone) and two[r] (two at once) were measured back to
 * back: the speedup is the median of the per-repeat ratios, so a slow drift in the machine's speed,
 * which moves both halves of a repeat alike, cancels; the rates are the plain medians.
 */
export function summarisePairs(
  one: readonly (readonly TimedRun[])[],
  two: readonly (readonly TimedRun[])[],
): PairedSpeedup {
  const oneRates = one.map(combinedThroughput);
  const twoRates = two.map(combinedThroughput);
  const ratios = pairedRatios(twoRates, oneRates);
  const speedups = ratios.map((r) => sig(r, 3) ?? r);
  const range = spread(speedups);
  const medianCores = (runs: readonly (readonly TimedRun[])[]) => {
    const used = runs.map(coresUsed);
    return used.every((u) => u !== null) ? sig(median(used as number[]), 3) : null;
  };
  return {
    speedup: sig(median(ratios), 3),
    speedups,
    speedupRange: range,
    oneExamplesPerSec: sig(median(oneRates)),
    twoExamplesPerSec: sig(median(twoRates)),
    coresUsed: { one: medianCores(one), two: medianCores(two) },
  };
}

/** Steps that take about `seconds` at `secondsPerStep`, at least 5 and at most 1000. */
export function stepsForBudget(seconds: number, secondsPerStep: number): number {
  if (!(secondsPerStep > 0)) return 5;
  return Math.max(5, Math.min(1000, Math.round(seconds / secondsPerStep)));
}

const MODEL = "mnist-cnn";
const BATCH = 10;
const LEARNING_RATE = 0.01;

function workerScript(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const script = path.join(here, "parallel-worker.js");
  if (!existsSync(script)) throw new Error(`${script} is missing: build first (npm run build)`);
  return script;
}

class FedsimProcess implements TrainingProcess {
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

type Pair = readonly [TrainingProcess, TrainingProcess];

/** The measurements of one side, repeat by repeat. */
class PairedRuns {
  readonly one: TimedRun[][] = [];
  readonly two: TimedRun[][] = [];

  constructor(
    readonly pair: Pair,
    readonly steps: number,
  ) {}

  /** Alone, then both at once (or the reverse on odd repeats), back to back. */
  async measure(repeat: number): Promise<string> {
    const { pair, steps } = this;
    const alone = async () => [await pair[repeat % 2].run(steps, 100 + repeat)];
    const together = () => Promise.all(pair.map((p, i) => p.run(steps, 200 + 2 * repeat + i)));
    let one: TimedRun[];
    let two: TimedRun[];
    if (repeat % 2 === 0) {
      one = await alone();
      two = await together();
    } else {
      two = await together();
      one = await alone();
    }
    this.one.push(one);
    this.two.push(two);
    const rate = (runs: TimedRun[]) =>
      `${combinedThroughput(runs).toFixed(1)} ex/s on ${coresUsed(runs)?.toFixed(2) ?? "?"} cores`;
    return `one ${rate(one)}, two ${rate(two)}: ${(combinedThroughput(two) / combinedThroughput(one)).toFixed(3)}×`;
  }
}

/** Steps per run for `secondsPerRun`, from a short run alone (the ready figure may be from a busy start-up). */
async function calibrate(trainer: TrainingProcess, readySecondsPerStep: number, secondsPerRun: number) {
  const probeSteps = Math.max(3, Math.round(0.3 / readySecondsPerStep));
  const run = await trainer.run(probeSteps, 0);
  return stepsForBudget(secondsPerRun, (run.end - run.start) / 1000 / probeSteps);
}

export async function runParallel(options: {
  quick: boolean;
  log: (line: string) => void;
}): Promise<ParallelSection> {
  const { quick, log } = options;
  // Many short repeats rather than a few long ones: the median of paired ratios needs numbers.
  const repeats = quick ? 2 : 7;
  const secondsPerRun = quick ? 0.8 : 1.4;
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
  const fedsim = [
    new FedsimProcess(script, config(1), threads),
    new FedsimProcess(script, config(2), threads),
  ] as const;
  const torch = startTorchPair({
    data: loadEmbeddedMnist().train,
    batch: BATCH,
    learningRate: LEARNING_RATE,
    warmupSteps: 5,
  });
  let pytorchReason = typeof torch === "string" ? torch : null;
  try {
    const ready = await Promise.all(fedsim.map((w) => w.ready));
    const backend = ready[0].backend;
    let torchRuns: PairedRuns | null = null;
    let torchVersion: string | null = null;
    if (typeof torch !== "string") {
      try {
        const torchReady = await torch.ready;
        torchVersion = torchReady[0].torch;
        const sps = Math.max(...torchReady.map((r) => r.secondsPerStep));
        torchRuns = new PairedRuns(torch.processes, await calibrate(torch.processes[0], sps, secondsPerRun));
      } catch (err) {
        pytorchReason = errorMessage(err);
      }
    }
    const sps = Math.max(...ready.map((r) => r.secondsPerStep));
    const fedsimRuns = new PairedRuns(fedsim, await calibrate(fedsim[0], sps, secondsPerRun));
    log(
      `parallel: ${MODEL} batch ${BATCH} on ${backend}, ${fedsimRuns.steps} steps per client, ${repeats} repeats; ` +
        (torchRuns
          ? `PyTorch ${torchRuns.steps} steps per process`
          : `no PyTorch reference (${pytorchReason})`),
    );
    for (let r = 0; r < repeats; r++) {
      // fedsim then PyTorch, PyTorch then fedsim: each side sees the same machine on average.
      const sides = r % 2 === 0 ? (["fedsim", "torch"] as const) : (["torch", "fedsim"] as const);
      for (const side of sides) {
        if (side === "fedsim") log(`  ${r + 1} fedsim  ${await fedsimRuns.measure(r)}`);
        else if (torchRuns !== null) {
          try {
            log(`  ${r + 1} PyTorch ${await torchRuns.measure(r)}`);
          } catch (err) {
            pytorchReason = `PyTorch failed in repeat ${r + 1}: ${errorMessage(err)}`;
            log(`  ${pytorchReason}; the fedsim figures stand`);
            torchRuns = null;
          }
        }
      }
    }
    const own = summarisePairs(fedsimRuns.one, fedsimRuns.two);
    const pytorch: PytorchParallel | null =
      torchRuns === null
        ? null
        : {
            ...summarisePairs(torchRuns.one, torchRuns.two),
            torch: torchVersion,
            stepsPerProcess: torchRuns.steps,
            threadsPerProcess: 1,
          };
    return {
      speedup: own.speedup,
      speedups: own.speedups,
      speedupRange: own.speedupRange,
      oneClientExamplesPerSec: own.oneExamplesPerSec,
      twoClientsExamplesPerSec: own.twoExamplesPerSec,
      backend,
      model: MODEL,
      batch: BATCH,
      stepsPerClient: fedsimRuns.steps,
      repeats,
      cores,
      coresUsed: own.coresUsed,
      threadsPerProcess: threads,
      pytorch,
      pytorchReason: pytorch === null ? (pytorchReason ?? "not measured") : null,
      ratioToPytorch: sig(ratio(own.speedup, pytorch?.speedup ?? null), 3),
    };
  } finally {
    for (const w of fedsim) w.close();
    if (typeof torch !== "string") torch.close();
  }
}
