import { type ChildProcess, fork } from "node:child_process";
import { existsSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describeError } from "../common/errors.js";
import type { Scenario } from "./schema.js";

/** Where the compiled CLI lives, for forking pool processes; null when running from sources. */
export function compiledCli(): string | null {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidate = path.join(here, "..", "cli", "index.js");
  return existsSync(candidate) ? candidate : null;
}

/** What one pool worker process hosts and where it connects (cli/commands/pool-worker.ts reads it). */
export interface PoolWorkerSpec {
  url: string;
  token: string;
  scenario: Scenario;
  /** A list, or a stride: a list of 100,000 indices would not fit in an environment variable. */
  clientIndices: number[] | { start: number; step: number; count: number };
  backend: Scenario["backend"];
  /** One pool session for all its clients (false: one socket each, for envelopes and SecAgg). */
  session: boolean;
  modules: string[];
  /** The pool host the worker belongs to (remote pools only). */
  poolHost?: string;
}

/**
 * Forks one `fedsim pool-worker` process. `workers` is how many share the cores this process
 * may use: each gets its share of oneDNN threads, since more threads than cores only queue.
 */
export function forkPoolWorker(
  cli: string,
  spec: PoolWorkerSpec,
  workers: number,
  log: (line: string) => void,
  cores = os.cpus().length,
): ChildProcess {
  const child = fork(cli, ["pool-worker"], {
    env: {
      ...process.env,
      FEDSIM_POOL: JSON.stringify(spec),
      FEDSIM_NATIVE_THREADS:
        process.env.FEDSIM_NATIVE_THREADS ?? String(Math.max(1, Math.floor(cores / workers))),
    },
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  const forward = (chunk: Buffer) => {
    for (const line of chunk.toString().split("\n")) if (line.trim()) log(`pool ${child.pid}: ${line}`);
  };
  child.stdout?.on("data", forward);
  child.stderr?.on("data", forward);
  child.on("exit", (code, signal) => {
    if (code !== 0 && signal !== "SIGTERM")
      log(`pool ${child.pid}: exited with ${describeError(code ?? signal)}`);
  });
  return child;
}
