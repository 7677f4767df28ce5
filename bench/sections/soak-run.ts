/**
 * A soak run: many rounds of a small federation in one process (coordinator and clients), with
 * a probe between rounds, and the checks that say whether anything leaks. bench/soak.ts runs it
 * for 200 rounds; tests/load-soak.test.ts for 20.
 */
import * as tf from "@tensorflow/tfjs";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { FedAvg } from "../../common/strategy/fedavg.js";
import { startCoordinator } from "../../server/coordinator.js";
import { HostedClients } from "./load-clients.js";
import { tinyTestData } from "./load-data.js";
import { activeResources, clientListeners, forceGc, memorySample, serverListeners } from "./probe.js";

export interface SoakOptions {
  rounds?: number;
  clients?: number;
  examplesPerClient?: number;
  /** Growth is measured from the end of this round (default 20, or a fifth of the rounds). */
  warmupRounds?: number;
  /** Largest allowed RSS growth after the warm-up, as a fraction (default 0.10). */
  rssGrowthLimit?: number;
  /** Pause between rounds before probing, so that acks and timers of the last round settle (ms). */
  settleMs?: number;
  model?: string;
  backend?: "cpu" | "wasm";
  seed?: number;
  log?: (line: string) => void;
}

/** The state after one round (round 0: connected, before any training). */
export interface SoakSample {
  round: number;
  numTensors: number;
  tensorBytes: number;
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** process.getActiveResourcesInfo(), by kind. */
  resources: Record<string, number>;
  timers: number;
  handles: number;
  serverListeners: number;
  socketListeners: number;
  clientListeners: number;
  serverSockets: number;
  knownClients: number;
}

export interface SoakCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface SeriesSummary {
  first: number;
  atWarmup: number;
  last: number;
  max: number;
}

export interface SoakResult {
  options: Required<Omit<SoakOptions, "log">>;
  samples: SoakSample[];
  summary: Record<SummarisedMetric, SeriesSummary>;
  checks: SoakCheck[];
  ok: boolean;
  seconds: number;
  roundFailures: number;
  clientErrors: number;
}

const SUMMARISED = [
  "numTensors",
  "rss",
  "heapUsed",
  "timers",
  "handles",
  "serverListeners",
  "socketListeners",
  "clientListeners",
] as const;
type SummarisedMetric = (typeof SUMMARISED)[number];

export async function runSoak(input: SoakOptions = {}): Promise<SoakResult> {
  const rounds = input.rounds ?? 200;
  const options: Required<Omit<SoakOptions, "log">> = {
    rounds,
    clients: input.clients ?? 10,
    examplesPerClient: input.examplesPerClient ?? 32,
    warmupRounds: input.warmupRounds ?? Math.min(20, Math.max(1, Math.floor(rounds / 5))),
    rssGrowthLimit: input.rssGrowthLimit ?? 0.1,
    settleMs: input.settleMs ?? 30,
    model: input.model ?? "tiny-mlp",
    backend: input.backend ?? "cpu",
    seed: input.seed ?? 1,
  };
  if (!Number.isInteger(rounds) || rounds < 2) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `rounds must be an integer ≥ 2, got ${rounds}`);
  }
  if (!(options.warmupRounds >= 1 && options.warmupRounds < rounds)) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `warmupRounds must be in [1, rounds), got ${options.warmupRounds}`,
    );
  }
  const log = input.log ?? (() => {});
  const started = performance.now();
  const samples: SoakSample[] = [];
  let hosted: HostedClients | null = null;
  const coordinator = await startCoordinator({
    host: "127.0.0.1",
    port: 0,
    rounds,
    model: options.model,
    testData: tinyTestData(options.seed),
    strategy: new FedAvg({ minFitClients: 1, fitConfig: { epochs: 1, batchSize: 8, learningRate: 0.1 } }),
    deadlineMs: 60_000,
    minAvailableClients: options.clients,
    seed: options.seed,
    backend: options.backend,
    auth: { kind: "open" },
    // The probe runs at the start of every round, i.e. once the previous round is wholly over.
    plugin: () => ({
      prepareRound: async (round) => {
        samples.push(await probe(round - 1));
        if (round % 20 === 0) log(`round ${round - 1}: ${describeSample(samples[samples.length - 1])}`);
        return {};
      },
    }),
  });
  const probe = async (round: number): Promise<SoakSample> => {
    const resources = await settledResources(options.settleMs);
    forceGc();
    const memory = memorySample();
    const tensors = tf.memory();
    const server = serverListeners(coordinator.sockets.io as never);
    return {
      round,
      numTensors: tensors.numTensors,
      tensorBytes: tensors.numBytes,
      rss: memory.rss,
      heapUsed: memory.heapUsed,
      external: memory.external,
      arrayBuffers: memory.arrayBuffers,
      resources,
      timers: resources["Timeout"] ?? 0,
      handles: Object.values(resources).reduce((s, n) => s + n, 0),
      serverListeners: server.server,
      socketListeners: server.sockets,
      clientListeners: clientListeners((hosted?.nodes ?? []).map((n) => n.socket) as never),
      serverSockets: server.socketCount,
      knownClients: coordinator.sockets.knownClients(),
    };
  };
  try {
    hosted = (
      await HostedClients.start({
        url: coordinator.url,
        first: 0,
        count: options.clients,
        seed: options.seed,
        examplesPerClient: options.examplesPerClient,
      })
    ).hosted;
    const result = await coordinator.run();
    samples.push(await probe(rounds));
    const checks = evaluateSoak(samples, options);
    const summary = Object.fromEntries(
      SUMMARISED.map((metric) => [metric, summarise(samples, metric, options.warmupRounds)]),
    ) as Record<SummarisedMetric, SeriesSummary>;
    return {
      options,
      samples,
      summary,
      checks,
      ok: checks.every((c) => c.ok),
      seconds: (performance.now() - started) / 1000,
      roundFailures: result.rounds.reduce((s, r) => s + r.failures, 0),
      clientErrors: hosted.errors.count,
    };
  } finally {
    hosted?.close();
    await coordinator.close();
  }
}

/**
 * The active resources once they stop changing: the last round's acks are still crossing the
 * loopback for a moment after the coordinator moves on (their timers count as "Timeout"), and
 * on a loaded machine that moment can outlast any fixed pause. Gives up after 2 s.
 */
async function settledResources(settleMs: number): Promise<Record<string, number>> {
  const pause = () => new Promise((resolve) => setTimeout(resolve, settleMs));
  await pause();
  let previous = JSON.stringify(activeResources());
  for (let tries = 0; tries * settleMs < 2000; tries++) {
    await pause();
    const now = JSON.stringify(activeResources());
    if (now === previous) break;
    previous = now;
  }
  return JSON.parse(previous) as Record<string, number>;
}

function summarise(samples: readonly SoakSample[], metric: SummarisedMetric, warmup: number): SeriesSummary {
  const values = samples.map((s) => s[metric]);
  return {
    first: values[0],
    atWarmup: samples.find((s) => s.round === warmup)?.[metric] ?? Number.NaN,
    last: values[values.length - 1],
    max: Math.max(...values),
  };
}

/**
 * The leak checks over the per-round samples (sample i is taken after round i; round 0 is the
 * connected federation before training):
 * - every round leaves exactly as many tensors as round 1 did (round 1 builds the clients' model);
 * - listeners (server, per socket, client) and active timers and handles after the warm-up never
 *   exceed their count at the end of the warm-up;
 * - RSS at the end is within `rssGrowthLimit` of RSS at the end of the warm-up.
 */
export function evaluateSoak(
  samples: readonly SoakSample[],
  limits: { warmupRounds: number; rssGrowthLimit: number },
): SoakCheck[] {
  const trained = samples.filter((s) => s.round >= 1);
  const warm = samples.find((s) => s.round === limits.warmupRounds);
  const after = samples.filter((s) => s.round >= limits.warmupRounds);
  const last = samples[samples.length - 1];
  if (trained.length === 0 || !warm || !last) {
    return [
      { name: "samples", ok: false, detail: `no samples after round 1 and at round ${limits.warmupRounds}` },
    ];
  }
  const checks: SoakCheck[] = [];
  const tensorCounts = new Set(trained.map((s) => s.numTensors));
  checks.push({
    name: "numTensors flat",
    ok: tensorCounts.size === 1,
    detail:
      tensorCounts.size === 1
        ? `${trained[0].numTensors} tensors after every round`
        : `varies: ${describeRange(trained, "numTensors")}`,
  });
  for (const metric of [
    "serverListeners",
    "socketListeners",
    "clientListeners",
    "timers",
    "handles",
  ] as const) {
    const peak = Math.max(...after.map((s) => s[metric]));
    const worst = after.find((s) => s[metric] === peak);
    checks.push({
      name: `${metric} not growing`,
      ok: peak <= warm[metric],
      detail: `${warm[metric]} after round ${warm.round}, at most ${peak}${peak > warm[metric] ? ` (round ${worst?.round})` : ""}, ${last[metric]} at the end`,
    });
  }
  const growth = (last.rss - warm.rss) / warm.rss;
  checks.push({
    name: `RSS growth < ${(limits.rssGrowthLimit * 100).toFixed(0)}% after round ${warm.round}`,
    ok: growth < limits.rssGrowthLimit,
    detail: `${mibText(warm.rss)} → ${mibText(last.rss)} MiB (${(growth * 100).toFixed(1)}%)`,
  });
  return checks;
}

/** Where a series changes value: "r1=40, r7=41, …" (the first ten changes). */
function describeRange(samples: readonly SoakSample[], metric: SummarisedMetric): string {
  const changes = samples.filter((s, i) => i === 0 || s[metric] !== samples[i - 1][metric]);
  const shown = changes.slice(0, 10).map((s) => `r${s.round}=${s[metric]}`);
  return `${shown.join(", ")}${changes.length > 10 ? ", …" : ""}`;
}

function mibText(bytes: number): string {
  return (bytes / 2 ** 20).toFixed(1);
}

export function describeSample(s: SoakSample): string {
  return `tensors ${s.numTensors}, RSS ${mibText(s.rss)} MiB, heap ${mibText(s.heapUsed)} MiB, timers ${s.timers}, handles ${s.handles}, listeners ${s.serverListeners}/${s.socketListeners}/${s.clientListeners}`;
}
