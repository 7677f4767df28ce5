/**
 * One load run: a coordinator in this process, N virtual clients in forked host processes (or in
 * this process, for tests), a few rounds, and what it cost. bench/load.ts runs it from the command
 * line; tests/load-soak.test.ts runs a small one.
 */
import { type ChildProcess, fork } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { FedAvg } from "../../common/strategy/fedavg.js";
import { totalSize } from "../../common/weights.js";
import { sliceIndices } from "../../scenarios/sim/pool.js";
import { startCoordinator } from "../../server/coordinator.js";
import type { RoundPhase, RoundRecord } from "../../server/round-record.js";
import { HostedClients, type HostedReport } from "./load-clients.js";
import { tinyTestData } from "./load-data.js";
import type { WorkerMessage, WorkerSpec } from "./load-worker.js";
import { forceGc, MemorySampler, memorySample } from "./probe.js";

export interface LoadOptions {
  clients: number;
  /** Clients sampled per round, or "all" of the connected ones. */
  sampled: number | "all";
  rounds: number;
  /** Client host processes; 0 hosts the clients in this process. */
  processes: number;
  examplesPerClient?: number;
  model?: string;
  backend?: "cpu" | "wasm";
  seed?: number;
  /** Round deadline (default 10 min: a host trains its sampled clients one after another). */
  deadlineMs?: number;
  /** How long to wait for every client to be admitted (default 10 min). */
  connectTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface LoadRound {
  round: number;
  seconds: number;
  sampled: number;
  participants: number;
  failures: number;
  /** CPU (user + system) the coordinator's process spent in the round. */
  cpuSeconds: number;
  /** Seconds per round-loop phase (WAITING_FOR_CLIENTS, CONFIGURE_FIT, COLLECTING, …). */
  phases: Partial<Record<RoundPhase, number>>;
  /** The longest and the summed local training the clients reported. */
  trainSecondsMax: number;
  trainSecondsSum: number;
}

export interface HostFigures extends HostedReport {
  peakRss: number;
  peakHeap: number;
}

export interface LoadResult {
  options: ResolvedLoadOptions & { params: number };
  /** From the first client (or host process) started to every client admitted. */
  connectSeconds: number;
  /** The slowest host's own time from its first connection to its last admission. */
  hostConnectSeconds: number;
  connected: number;
  rounds: LoadRound[];
  coordinator: {
    /** CPU (user + system) the coordinator's process spent while the clients connected. */
    connectCpuSeconds: number;
    rssBefore: number;
    heapBefore: number;
    /** With every client connected and idle, after a full GC. */
    rssConnected: number;
    heapConnected: number;
    peakRss: number;
    peakHeap: number;
    memorySamples: number;
  };
  hosts: HostFigures[];
  /** Host RSS (and heap) growth from creating and admitting the clients, divided by their number. */
  perIdleClient: { rss: number; heap: number } | null;
  /** Coordinator RSS (and heap) growth from admitting the clients, divided by their number. */
  perConnection: { rss: number; heap: number } | null;
  failures: {
    total: number;
    inRounds: number;
    clientErrors: number;
    notConnected: number;
    samples: string[];
  };
}

const DEFAULTS = {
  examplesPerClient: 8,
  model: "tiny-mlp",
  backend: "cpu" as const,
  seed: 1,
  deadlineMs: 600_000,
  connectTimeoutMs: 600_000,
};

export async function runLoad(input: LoadOptions): Promise<LoadResult> {
  const { log: givenLog, ...given } = input;
  const o: ResolvedLoadOptions = { ...DEFAULTS, ...withoutUndefined(given) };
  validate(o);
  checkFileLimit(o);
  const log = givenLog ?? (() => {});
  const sampled = o.sampled === "all" ? o.clients : o.sampled;
  const coordinatorErrors: string[] = [];
  const sampler = new MemorySampler().start();
  const phaseLog = new PhaseClock();
  const training = new Map<number, number[]>();
  const coordinator = await startCoordinator({
    host: "127.0.0.1",
    port: 0,
    rounds: o.rounds,
    model: o.model,
    testData: tinyTestData(o.seed),
    strategy: new FedAvg({
      ...(o.sampled === "all" ? { fractionFit: 1 } : { clientsPerRound: sampled }),
      minFitClients: 1,
      fitConfig: { epochs: 1, batchSize: 8, learningRate: 0.1 },
    }),
    deadlineMs: o.deadlineMs,
    minAvailableClients: o.clients,
    waitForClientsMs: o.connectTimeoutMs,
    seed: o.seed,
    backend: o.backend,
    auth: { kind: "open" },
    onPhase: (round, phase) => phaseLog.enter(round, phase),
    onClientOutcome: (round, outcome) => {
      // Unprotected rounds only: under DP or SecAgg clients do not report their training time.
      if (!outcome.ok || !outcome.metrics) return;
      const list = training.get(round) ?? [];
      list.push(outcome.metrics.seconds);
      training.set(round, list);
    },
    onRound: (record) => {
      phaseLog.end(record.round);
      log(
        `round ${record.round}: ${record.seconds.toFixed(2)} s, ${record.participants}/${record.sampled} clients`,
      );
    },
    log: (line) => {
      if (/WARNING|failed|refused|error/i.test(line) && !/insecure-open/.test(line)) {
        if (coordinatorErrors.length < 5) coordinatorErrors.push(line);
      }
    },
  });
  const params = totalSize(coordinator.loop.globalWeights.specs);
  forceGc();
  const before = memorySample();
  const hosts: HostSet = o.processes > 0 ? new ForkedHosts() : new InProcessHosts();
  try {
    const started = performance.now();
    const cpuStart = process.cpuUsage();
    const reports = await hosts.start(o, coordinator.url, log);
    await coordinator.sockets.waitForClients(o.clients, o.connectTimeoutMs);
    const connectSeconds = (performance.now() - started) / 1000;
    const connectCpu = process.cpuUsage(cpuStart);
    const connected = coordinator.sockets.count();
    log(`connect: ${connected}/${o.clients} clients in ${connectSeconds.toFixed(1)} s`);
    forceGc();
    const idle = memorySample();
    const result = await coordinator.run();
    const peak = sampler.stop();
    const stats = await hosts.stats();
    const rounds = result.rounds.map((r) => toLoadRound(r, phaseLog, training.get(r.round) ?? []));
    const hostFigures = reports.map((r, i) => ({
      ...r,
      peakRss: stats[i].peakRss,
      peakHeap: stats[i].peakHeap,
    }));
    const clientErrors = stats.reduce((s, x) => s + x.errors, 0);
    const inRounds = rounds.reduce((s, r) => s + r.failures, 0);
    const notConnected = o.clients - connected;
    return {
      options: { ...o, params },
      connectSeconds,
      hostConnectSeconds: Math.max(...reports.map((r) => r.connectSeconds)),
      connected,
      rounds,
      coordinator: {
        connectCpuSeconds: (connectCpu.user + connectCpu.system) / 1e6,
        rssBefore: before.rss,
        heapBefore: before.heapUsed,
        rssConnected: idle.rss,
        heapConnected: idle.heapUsed,
        peakRss: Math.max(peak.rss, sampler.peak.rss),
        peakHeap: Math.max(peak.heapUsed, sampler.peak.heapUsed),
        memorySamples: sampler.samples,
      },
      hosts: hostFigures,
      perIdleClient:
        o.processes > 0
          ? {
              rss: sum(reports.map((r) => r.rssAfter - r.rssBefore)) / o.clients,
              heap: sum(reports.map((r) => r.heapAfter - r.heapBefore)) / o.clients,
            }
          : null,
      // With the clients in this process too, the growth would mix both sides: not reported.
      perConnection:
        o.processes > 0
          ? {
              rss: (idle.rss - before.rss) / Math.max(1, connected),
              heap: (idle.heapUsed - before.heapUsed) / Math.max(1, connected),
            }
          : null,
      failures: {
        total: inRounds + clientErrors + notConnected,
        inRounds,
        clientErrors,
        notConnected,
        samples: [...stats.flatMap((s) => s.errorSamples), ...coordinatorErrors].slice(0, 10),
      },
    };
  } finally {
    sampler.stop();
    await coordinator.close();
    await hosts.stop();
  }
}

/** The soft limit on open files of this process (and of the hosts it forks), or null if unknown. */
export function openFilesSoftLimit(): number | null {
  try {
    const line = readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    const soft = line?.split(/\s{2,}/)[1];
    const value = Number(soft);
    return Number.isFinite(value) ? value : null;
  } catch {
    return null;
  }
}

/**
 * Each client costs the coordinator one socket (one file descriptor), and its host another:
 * refuse up front, saying which limit to raise, instead of failing midway with EMFILE.
 */
function checkFileLimit(o: ResolvedLoadOptions): void {
  const limit = openFilesSoftLimit();
  if (limit === null) return;
  const perProcess =
    o.processes > 0 ? Math.max(o.clients, Math.ceil(o.clients / o.processes)) : 2 * o.clients;
  const headroom = 200;
  if (perProcess + headroom > limit) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `${o.clients} clients need about ${perProcess + headroom} open files in one process, but the limit (ulimit -n) is ${limit}; raise it${o.processes === 0 ? ", or host the clients in other processes (processes > 0)" : ""}`,
    );
  }
}

function validate(o: ResolvedLoadOptions): void {
  const wholeAtLeast = (name: string, value: number, min: number) => {
    if (!Number.isInteger(value) || value < min) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `${name} must be an integer ≥ ${min}, got ${value}`);
    }
  };
  wholeAtLeast("clients", o.clients, 1);
  wholeAtLeast("rounds", o.rounds, 1);
  wholeAtLeast("processes", o.processes, 0);
  wholeAtLeast("examplesPerClient", o.examplesPerClient, 1);
  if (o.sampled !== "all") {
    wholeAtLeast("sampled", o.sampled, 1);
    if (o.sampled > o.clients) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `sampled (${o.sampled}) cannot exceed clients (${o.clients})`,
      );
    }
  }
}

function toLoadRound(record: RoundRecord, clock: PhaseClock, trainSeconds: number[]): LoadRound {
  return {
    round: record.round,
    seconds: record.seconds,
    sampled: record.sampled,
    participants: record.participants,
    failures: record.failures,
    cpuSeconds: clock.cpuSeconds(record.round),
    phases: clock.durations(record.round),
    trainSecondsMax: trainSeconds.length > 0 ? Math.max(...trainSeconds) : 0,
    trainSecondsSum: sum(trainSeconds),
  };
}

/** Time spent in each round-loop phase, from the coordinator's onPhase calls. */
class PhaseClock {
  private readonly marks = new Map<number, { phase: RoundPhase; at: number; cpu: NodeJS.CpuUsage }[]>();

  enter(round: number, phase: RoundPhase): void {
    if (phase === "DONE") return;
    const list = this.marks.get(round) ?? [];
    list.push({ phase, at: performance.now(), cpu: process.cpuUsage() });
    this.marks.set(round, list);
  }

  end(round: number): void {
    this.marks.get(round)?.push({ phase: "DONE", at: performance.now(), cpu: process.cpuUsage() });
  }

  /** CPU seconds of this process from the round's first phase to its end. */
  cpuSeconds(round: number): number {
    const marks = this.marks.get(round) ?? [];
    const first = marks[0];
    const last = marks[marks.length - 1];
    if (!first || !last) return 0;
    return (last.cpu.user - first.cpu.user + last.cpu.system - first.cpu.system) / 1e6;
  }

  durations(round: number): Partial<Record<RoundPhase, number>> {
    const marks = this.marks.get(round) ?? [];
    const out: Partial<Record<RoundPhase, number>> = {};
    for (let i = 0; i + 1 < marks.length; i++) {
      const phase = marks[i].phase;
      out[phase] = (out[phase] ?? 0) + (marks[i + 1].at - marks[i].at) / 1000;
    }
    return out;
  }
}

interface HostStats {
  errors: number;
  errorSamples: string[];
  roundsTrained: number;
  peakRss: number;
  peakHeap: number;
}

export type ResolvedLoadOptions = Required<Omit<LoadOptions, "log">>;

interface HostSet {
  start(o: ResolvedLoadOptions, url: string, log: (line: string) => void): Promise<HostedReport[]>;
  stats(): Promise<HostStats[]>;
  stop(): Promise<void>;
}

/** Clients in this process: for tests, and for machines where forking is not wanted. */
class InProcessHosts implements HostSet {
  private hosted: HostedClients | null = null;
  private sampler = new MemorySampler();

  async start(o: ResolvedLoadOptions, url: string): Promise<HostedReport[]> {
    this.sampler.start();
    const { hosted, report } = await HostedClients.start({
      url,
      first: 0,
      count: o.clients,
      seed: o.seed,
      examplesPerClient: o.examplesPerClient,
    });
    this.hosted = hosted;
    return [report];
  }

  async stats(): Promise<HostStats[]> {
    const h = this.hosted;
    const peak = this.sampler.stop();
    return [
      {
        errors: h?.errors.count ?? 0,
        errorSamples: h?.errors.samples ?? [],
        roundsTrained: h?.roundsTrained() ?? 0,
        peakRss: Math.max(peak.rss, this.sampler.peak.rss),
        peakHeap: Math.max(peak.heapUsed, this.sampler.peak.heapUsed),
      },
    ];
  }

  async stop(): Promise<void> {
    this.sampler.stop();
    this.hosted?.close();
  }
}

/** Clients in forked processes, split evenly, as `fedsim run` splits a scenario's clients. */
class ForkedHosts implements HostSet {
  private readonly children: ChildProcess[] = [];

  async start(o: ResolvedLoadOptions, url: string, log: (line: string) => void): Promise<HostedReport[]> {
    const script = workerScript();
    const slices = sliceIndices(o.clients, o.processes);
    // sliceIndices deals round-robin; a host needs a contiguous range, of the same sizes.
    let first = 0;
    const ready: Promise<HostedReport>[] = [];
    for (const slice of slices) {
      const spec: WorkerSpec = {
        url,
        first,
        count: slice.length,
        seed: o.seed,
        examplesPerClient: o.examplesPerClient,
        backend: o.backend,
        readyTimeoutMs: o.connectTimeoutMs,
      };
      first += slice.length;
      const child = fork(script, [], {
        env: { ...process.env, FEDSIM_LOAD_WORKER: JSON.stringify(spec) },
        stdio: ["ignore", "pipe", "pipe", "ipc"],
      });
      this.children.push(child);
      const forward = (chunk: Buffer) => {
        for (const line of chunk.toString().split("\n")) if (line.trim()) log(`host ${child.pid}: ${line}`);
      };
      child.stdout?.on("data", forward);
      child.stderr?.on("data", forward);
      ready.push(
        nextMessage(child, "ready").then((m) => (m as Extract<WorkerMessage, { type: "ready" }>).report),
      );
    }
    return Promise.all(ready);
  }

  async stats(): Promise<HostStats[]> {
    return Promise.all(
      this.children.map(async (child) => {
        const reply = nextMessage(child, "stats");
        child.send({ type: "stats" });
        const m = (await reply) as Extract<WorkerMessage, { type: "stats" }>;
        return {
          errors: m.errors,
          errorSamples: m.errorSamples,
          roundsTrained: m.roundsTrained,
          peakRss: m.peakRss,
          peakHeap: m.peakHeap,
        };
      }),
    );
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
        if (child.connected) child.send({ type: "stop" });
        const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}

/** The compiled worker next to this module, or dist/'s when running from sources. */
function workerScript(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [
    path.join(here, "load-worker.js"),
    path.join(here, "..", "..", "dist", "bench", "sections", "load-worker.js"),
  ];
  const found = candidates.find((c) => existsSync(c));
  if (!found) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      "client host processes need the compiled bench (npm run build); or use processes: 0",
    );
  }
  return found;
}

function nextMessage(child: ChildProcess, type: WorkerMessage["type"]): Promise<WorkerMessage> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: WorkerMessage) => {
      if (m?.type !== type) return;
      cleanup();
      resolve(m);
    };
    const onExit = (code: number | null, signal: string | null) => {
      cleanup();
      reject(
        new FedsimError(
          ErrorCode.INTERNAL,
          `client host ${child.pid} exited (${code ?? signal}) before "${type}"`,
        ),
      );
    };
    const cleanup = () => {
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    child.on("message", onMessage);
    child.once("exit", onExit);
  });
}

function sum(values: readonly number[]): number {
  return values.reduce((s, v) => s + v, 0);
}

function withoutUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
