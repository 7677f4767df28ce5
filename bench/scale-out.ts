import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { stringify } from "yaml";
import type { RunSummary } from "../scenarios/report.js";
import { repoRoot } from "./paths.js";
import type { Host, Hosts } from "./scale-out-hosts.js";

/**
 * The scale-out set-up on hosts of our own (scale-out-hosts.ts): `fedsim run` on the first host,
 * one `fedsim pool` on each of the others, all as the compiled CLI. Used by `npm run
 * demo:scale-out` and by tests/scale-out-hosts.test.ts.
 */
export interface ScaleOutOptions {
  /** The coordinator's host first, then one per pool. */
  hosts: Hosts;
  clients?: number;
  rounds?: number;
  coresPerPool?: number;
  /** Gives up (killing every process) after this long; default 15 minutes. */
  timeoutMs?: number;
  log?: (line: string) => void;
}

export interface PoolReport {
  name: string;
  /** The pool's address as the coordinator saw it. */
  address: string;
  /** Clients it hosted in round 1. */
  hosted: number;
  exitCode: number | null;
}

export interface ScaleOutResult {
  hosts: Hosts["kind"];
  reason?: string;
  coordinator: string;
  pools: PoolReport[];
  clients: number;
  rounds: number;
  participants: number[];
  initialAccuracy: number;
  finalAccuracy: number;
  /** Update payload bytes the coordinator received over the run. */
  coordinatorBytesReceived: number;
}

const PORT = 7070;
const RUN_ID = "scale-out";
const TOKEN = "scale-out-demo-token";

export async function runScaleOut(options: ScaleOutOptions): Promise<ScaleOutResult> {
  const log = options.log ?? (() => {});
  const [coordinatorHost, ...poolHosts] = options.hosts.hosts;
  const clients = options.clients ?? 20;
  const rounds = options.rounds ?? 4;
  const dir = await mkdtemp(path.join(os.tmpdir(), "fedsim-scale-out-"));
  const processes: Launched[] = [];
  let timer: NodeJS.Timeout | undefined;
  try {
    const file = path.join(dir, "scenario.yaml");
    await writeFile(file, stringify(scenario(coordinatorHost, options.hosts.kind, clients, rounds)));
    const coordinator = launch(coordinatorHost, ["run", file, "--out", path.join(dir, "out")], log);
    processes.push(coordinator);
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`scale-out run not finished within ${options.timeoutMs ?? 900_000} ms`)),
        options.timeoutMs ?? 900_000,
      );
    });
    const [, url, runId, token] = await Promise.race([
      coordinator.waitFor(/fedsim pool --server (\S+) --run (\S+) --token (\S+)/),
      timeout,
    ]);
    const cores = String(options.coresPerPool ?? 1);
    const pools = poolHosts.map((host) => {
      const args = [
        "pool",
        "--server",
        url,
        "--run",
        runId,
        "--token",
        token,
        "--cores",
        cores,
        "--name",
        host.name,
      ];
      const pool = launch(host, args, log);
      processes.push(pool);
      return { host, pool };
    });
    const exit = await Promise.race([coordinator.exited, timeout]);
    if (exit !== 0) throw new Error(`fedsim run exited with ${exit}:\n${coordinator.output()}`);
    const reports = await Promise.race([
      Promise.all(pools.map(({ host, pool }) => poolReport(host, pool))),
      timeout,
    ]);
    const summary = JSON.parse(await readFile(path.join(dir, "out", "summary.json"), "utf8")) as RunSummary;
    return {
      hosts: options.hosts.kind,
      ...(options.hosts.reason ? { reason: options.hosts.reason } : {}),
      coordinator: coordinatorHost.address,
      pools: reports,
      clients,
      rounds: summary.rounds.length,
      participants: summary.rounds.map((r) => r.participants),
      initialAccuracy: summary.initial.accuracy,
      finalAccuracy: summary.final.accuracy,
      coordinatorBytesReceived: summary.rounds.reduce((sum, r) => sum + r.bytesReceived, 0),
    };
  } finally {
    clearTimeout(timer);
    for (const p of processes) p.kill();
    await rm(dir, { recursive: true, force: true });
  }
}

function scenario(host: Host, kind: Hosts["kind"], clients: number, rounds: number) {
  return {
    name: "scale-out",
    seed: 7,
    backend: "auto",
    dataset: { name: "mnist", limitTrain: 4000, limitTest: 1000 },
    model: "tiny-mlp",
    clients,
    rounds,
    processes: 0,
    roundDeadlineSeconds: 300,
    fit: { epochs: 1, batchSize: 20, learningRate: 0.1 },
    // In a namespace the port is ours alone; on loopback let the kernel choose one.
    remotePools: {
      host: host.address,
      port: kind === "namespaces" ? PORT : 0,
      minPools: 2,
      runId: RUN_ID,
      token: TOKEN,
      waitSeconds: 300,
    },
  };
}

async function poolReport(host: Host, pool: Launched): Promise<PoolReport> {
  const exitCode = await pool.exited;
  const text = pool.output();
  return {
    name: host.name,
    address: /joined run \S+ as \S+ from (\S+)/.exec(text)?.[1] ?? "",
    hosted: Number(/round 1: hosting (\d+) clients/.exec(text)?.[1] ?? 0),
    exitCode,
  };
}

interface Launched {
  waitFor(pattern: RegExp): Promise<RegExpMatchArray>;
  exited: Promise<number | null>;
  output(): string;
  /** Kills the process and the workers it forked (its own process group). */
  kill(): void;
}

/** The compiled CLI on a host, in a process group of its own; waits on what it prints. */
function launch(host: Host, args: string[], log: (line: string) => void): Launched {
  const cli = path.join(repoRoot(), "dist", "cli", "index.js");
  const [command, ...rest] = [...host.prefix, process.execPath, cli, ...args];
  const child: ChildProcess = spawn(command, rest, { stdio: ["ignore", "pipe", "pipe"], detached: true });
  let text = "";
  const watchers = new Set<() => void>();
  let closed = false;
  const onData = (chunk: Buffer) => {
    text += chunk.toString();
    for (const line of chunk.toString().split("\n")) if (line.trim()) log(`${host.name}: ${line}`);
    for (const check of [...watchers]) check();
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const exited = new Promise<number | null>((resolve) => {
    child.once("close", (code) => {
      closed = true;
      for (const check of [...watchers]) check();
      resolve(code);
    });
  });
  return {
    waitFor: (pattern) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const match = pattern.exec(text);
          if (match) {
            watchers.delete(check);
            resolve(match);
          } else if (closed) {
            watchers.delete(check);
            reject(new Error(`${host.name} exited before printing ${pattern}:\n${text}`));
          }
        };
        watchers.add(check);
        check();
      }),
    exited,
    output: () => text,
    kill: () => {
      if (closed || child.pid === undefined) return;
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // Already gone.
      }
    },
  };
}
