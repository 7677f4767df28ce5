import { execFile } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { type AddressInfo, createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { stringify } from "yaml";
import type { RunSummary } from "../scenarios/report.js";
import type { Host, Hosts } from "./scale-out-hosts.js";
import { type Launched, launch, launchCommand } from "./scale-out-process.js";

/**
 * The scale-out set-up on hosts of our own (scale-out-hosts.ts), all as the compiled CLI:
 * `fedsim run` on the host named "coordinator", one `fedsim pool` on each host named "pool…",
 * and with `edges`, redis-server on "redis" and a `fedsim coordinator --edge` on each "edge…"
 * host, the workers of pool k connecting to edge k. Used by `npm run demo:scale-out` and by
 * tests/scale-out-hosts.test.ts.
 */
export interface ScaleOutOptions {
  hosts: Hosts;
  /** Put the coordinator's edges (and Redis) between the pools and the coordinator. */
  edges?: boolean;
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
  edges: number;
  pools: PoolReport[];
  clients: number;
  rounds: number;
  participants: number[];
  initialAccuracy: number;
  finalAccuracy: number;
  /** Update bytes the coordinator's round records counted over the run. */
  recordedBytesReceived: number;
  /** Bytes the coordinator's host received on its network link over the run (namespaces only). */
  coordinatorIngressBytes: number | null;
}

const runFile = promisify(execFile);
const PORT = 7070;
const REDIS_PORT = 6379;
const EDGE_PORT = 9000;
const RUN_ID = "scale-out";
const TOKEN = "scale-out-demo-token";

export async function runScaleOut(options: ScaleOutOptions): Promise<ScaleOutResult> {
  const log = options.log ?? (() => {});
  const named = (prefix: string) => options.hosts.hosts.filter((h) => h.name.startsWith(prefix));
  const [coordinatorHost] = named("coordinator");
  const [redisHost] = named("redis");
  const poolHosts = named("pool");
  const edgeHosts = options.edges ? named("edge") : [];
  if (
    !coordinatorHost ||
    poolHosts.length === 0 ||
    (options.edges && (!redisHost || edgeHosts.length === 0))
  ) {
    throw new Error("scale-out needs hosts named coordinator and pool…, and with edges redis and edge…");
  }
  const namespaced = options.hosts.kind === "namespaces";
  const clients = options.clients ?? 20;
  const rounds = options.rounds ?? 4;
  const dir = await mkdtemp(path.join(os.tmpdir(), "fedsim-scale-out-"));
  const processes: Launched[] = [];
  let timer: NodeJS.Timeout | undefined;
  const timeoutMs = options.timeoutMs ?? 900_000;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`scale-out run not finished within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  const within = <T>(p: Promise<T>) => Promise.race([p, timeout]);
  try {
    let redisUrl: string | undefined;
    if (redisHost && edgeHosts.length > 0) {
      const port = namespaced ? REDIS_PORT : await freePort();
      // Protected mode would refuse the other hosts; the hosts' network is ours alone.
      const args = [
        ...["--bind", redisHost.address, "--port", String(port), "--protected-mode", "no"],
        ...["--save", "", "--appendonly", "no"],
      ];
      const redis = launchCommand(redisHost, ["redis-server", ...args], log);
      processes.push(redis);
      await within(redis.waitFor(/Ready to accept connections/));
      redisUrl = `redis://${redisHost.address}:${port}`;
    }
    const file = path.join(dir, "scenario.yaml");
    await writeFile(file, stringify(scenario(coordinatorHost, namespaced, clients, rounds, redisUrl)));
    const ingressBefore = namespaced ? await ingressBytes(coordinatorHost) : 0;
    const coordinator = launch(coordinatorHost, ["run", file, "--out", path.join(dir, "out")], log);
    processes.push(coordinator);
    const [, url, runId, token] = await within(
      coordinator.waitFor(/fedsim pool --server (\S+) --run (\S+) --token (\S+)/),
    );
    const edgeUrls: string[] = [];
    for (const host of edgeHosts) {
      const edge = launch(host, edgeArgs(host, redisUrl as string, url, namespaced), log);
      processes.push(edge);
      const [, edgeUrl] = await within(edge.waitFor(/clients connect to (\S+)/));
      edgeUrls.push(edgeUrl);
    }
    const cores = String(options.coresPerPool ?? 1);
    const pools = poolHosts.map((host, k) => {
      const connect = edgeUrls.length > 0 ? ["--connect", edgeUrls[k % edgeUrls.length]] : [];
      const args = [
        ...["pool", "--server", url, "--run", runId, "--token", token],
        ...["--cores", cores, "--name", host.name, ...connect],
      ];
      const pool = launch(host, args, log);
      processes.push(pool);
      return { host, pool };
    });
    const exit = await within(coordinator.exited);
    if (exit !== 0) throw new Error(`fedsim run exited with ${exit}:\n${coordinator.output()}`);
    const ingress = namespaced ? (await ingressBytes(coordinatorHost)) - ingressBefore : null;
    const reports = await within(Promise.all(pools.map(({ host, pool }) => poolReport(host, pool))));
    const summary = JSON.parse(await readFile(path.join(dir, "out", "summary.json"), "utf8")) as RunSummary;
    return {
      hosts: options.hosts.kind,
      ...(options.hosts.reason ? { reason: options.hosts.reason } : {}),
      coordinator: coordinatorHost.address,
      edges: edgeHosts.length,
      pools: reports,
      clients,
      rounds: summary.rounds.length,
      participants: summary.rounds.map((r) => r.participants),
      initialAccuracy: summary.initial.accuracy,
      finalAccuracy: summary.final.accuracy,
      recordedBytesReceived: summary.rounds.reduce((sum, r) => sum + r.bytesReceived, 0),
      coordinatorIngressBytes: ingress,
    };
  } finally {
    clearTimeout(timer);
    for (const p of processes.reverse()) p.kill();
    await rm(dir, { recursive: true, force: true });
  }
}

function scenario(host: Host, namespaced: boolean, clients: number, rounds: number, redis?: string) {
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
      port: namespaced ? PORT : 0,
      minPools: 2,
      runId: RUN_ID,
      token: TOKEN,
      waitSeconds: 300,
      ...(redis ? { edges: { redis, edgeToken: TOKEN } } : {}),
    },
  };
}

function edgeArgs(host: Host, redis: string, coordinator: string, namespaced: boolean): string[] {
  return [
    ...["coordinator", "--edge", "--redis", redis, "--coordinator-url", coordinator],
    ...["--edge-token", TOKEN, "--edge-id", host.name, "--token", TOKEN],
    ...["--host", host.address, "--port", String(namespaced ? EDGE_PORT : 0)],
  ];
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

/** What the coordinator's host has received on its link (eth0) since its namespace was made. */
async function ingressBytes(host: Host): Promise<number> {
  const [command, ...args] = [...host.prefix, "cat", "/sys/class/net/eth0/statistics/rx_bytes"];
  const { stdout } = await runFile(command as string, args);
  return Number(stdout.trim());
}

/** A port that was free a moment ago (redis-server cannot listen on port 0 and say which). */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
