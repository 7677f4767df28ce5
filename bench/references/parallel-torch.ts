import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { createInterface } from "node:readline";
import type { TrainData } from "../../common/train/trainer.js";
import type { TimedRun, TrainingProcess } from "../timing.js";
import { errorMessage } from "../timing.js";
import { PYTHON, referenceEnv, scriptPath, writeTorchData } from "./torch-reference.js";

/**
 * The PyTorch side of the parallelism section: long-lived bench/references/torch_parallel.py processes, each
 * training torch_reference.py's CNN with one torch thread, started with the training reference's
 * environment (referenceEnv: Debian's python, OPENBLAS_NUM_THREADS=1, OPENBLAS_CORETYPE). They
 * answer "run" like fedsim's parallel-worker.ts, so both sides go through the same protocol.
 */

/** A line bench/references/torch_parallel.py prints, as the parent understands it. */
export type TorchMessage =
  | { type: "ready"; torch: string | null; threads: number | null; secondsPerStep: number }
  | { type: "done"; run: TimedRun }
  | { type: "unavailable"; reason: string }
  | { type: "error"; message: string };

const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/**
 * Reads one line of torch_parallel.py's output; null for a line that is not one of its messages
 * (stray output is ignored). Python reports wall times in seconds since the epoch; they become
 * milliseconds here, as fedsim's workers report them.
 */
export function parseTorchMessage(line: string): TorchMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  if (value === null || typeof value !== "object") return null;
  const m = value as Record<string, unknown>;
  if (m["available"] === false) {
    return {
      type: "unavailable",
      reason: typeof m["reason"] === "string" ? m["reason"] : "torch unavailable",
    };
  }
  switch (m["type"]) {
    case "ready":
      if (!isNumber(m["secondsPerStep"]) || !(m["secondsPerStep"] > 0)) {
        return { type: "error", message: `ready without a positive secondsPerStep: ${line}` };
      }
      return {
        type: "ready",
        torch: typeof m["torch"] === "string" ? m["torch"] : null,
        threads: isNumber(m["threads"]) ? m["threads"] : null,
        secondsPerStep: m["secondsPerStep"],
      };
    case "done": {
      const { examples, start, end, cpuSeconds } = m;
      if (!isNumber(examples) || !isNumber(start) || !isNumber(end)) {
        return { type: "error", message: `done without examples/start/end: ${line}` };
      }
      const run: TimedRun = { examples, start: start * 1000, end: end * 1000 };
      if (isNumber(cpuSeconds)) run.cpuSeconds = cpuSeconds;
      return { type: "done", run };
    }
    case "error":
      return { type: "error", message: String(m["message"] ?? "unknown error") };
    default:
      return null;
  }
}

export class TorchProcess implements TrainingProcess {
  private readonly child: ChildProcess;
  private pending: ((message: TorchMessage) => void) | null = null;
  private stderrTail = "";
  readonly ready: Promise<Extract<TorchMessage, { type: "ready" }>>;

  constructor(python: string, script: string, args: readonly string[]) {
    this.child = spawn(python, [script, ...args], {
      env: referenceEnv([1]),
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.ready = new Promise((resolve, reject) => {
      this.pending = (m) => (m.type === "ready" ? resolve(m) : reject(new Error(describe(m))));
    });
    // Handled here so a pair that fails before anyone awaits it cannot crash the suite.
    this.ready.catch(() => {});
    const lines = createInterface({ input: this.child.stdout! });
    lines.on("line", (line) => {
      const message = parseTorchMessage(line);
      if (message !== null) this.deliver(message);
    });
    this.child.stderr!.on("data", (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString()).slice(-2000);
    });
    this.child.stdin!.on("error", () => {}); // a dead child's pipe; "exit" reports it
    this.child.on("error", (err) => this.deliver({ type: "error", message: errorMessage(err) }));
    this.child.on("exit", (code, signal) => {
      const last = this.stderrTail.trim().split("\n").pop();
      const message = `torch_parallel.py exited with ${code ?? signal}${last ? `: ${last}` : ""}`;
      this.deliver({ type: "error", message });
    });
  }

  private deliver(message: TorchMessage): void {
    const pending = this.pending;
    this.pending = null;
    pending?.(message);
  }

  run(steps: number, seed: number): Promise<TimedRun> {
    return new Promise((resolve, reject) => {
      this.pending = (m) => (m.type === "done" ? resolve(m.run) : reject(new Error(describe(m))));
      this.child.stdin!.write(`run ${steps} ${seed}\n`);
    });
  }

  close(): void {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.stdin!.end("exit\n");
    const child = this.child;
    setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }, 5000).unref();
  }
}

function describe(m: TorchMessage): string {
  if (m.type === "unavailable") return m.reason;
  if (m.type === "error") return m.message;
  return `unexpected message ${m.type}`;
}

/** Examples written for the PyTorch processes: enough to shuffle through, quick to write. */
const TORCH_EXAMPLES = 2000;

export interface TorchPair {
  processes: [TorchProcess, TorchProcess];
  ready: Promise<[Extract<TorchMessage, { type: "ready" }>, Extract<TorchMessage, { type: "ready" }>]>;
  /** Stops both processes and removes the data they read. */
  close(): void;
}

/**
 * Starts two PyTorch processes on the first examples of `data`, or says why it cannot: no
 * python at `options.python`, or no torch_parallel.py. A missing torch shows up later, when
 * `ready` rejects with torch_reference.py's reason.
 */
export function startTorchPair(options: {
  data: TrainData;
  batch: number;
  learningRate: number;
  warmupSteps: number;
  python?: string;
}): TorchPair | string {
  const python = options.python ?? PYTHON;
  const script = scriptPath("torch_parallel.py");
  if (script === undefined) return "bench/references/torch_parallel.py not found";
  if (!existsSync(python)) return `${python} not found (install python3-torch)`;
  const { dir, images, labels } = writeTorchData(options.data, TORCH_EXAMPLES, "fedsim-bench-parallel-");
  const args = (seed: number) => [
    "--data",
    images,
    "--labels",
    labels,
    "--batch",
    String(options.batch),
    "--lr",
    String(options.learningRate),
    "--warmup",
    String(options.warmupSteps),
    "--seed",
    String(seed),
  ];
  const processes: [TorchProcess, TorchProcess] = [
    new TorchProcess(python, script, args(1)),
    new TorchProcess(python, script, args(2)),
  ];
  const ready = Promise.all([processes[0].ready, processes[1].ready]);
  ready.catch(() => {});
  return {
    processes,
    ready,
    close: () => {
      for (const p of processes) p.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
