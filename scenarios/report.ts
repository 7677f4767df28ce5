import type { Distribution } from "../common/distribution.js";
import type { FailureReason } from "../common/strategy/strategy.js";
import type { TrainPath } from "../common/train/fast-path-plan.js";
import type { RoundRecord } from "../server/round-record.js";
import type { ClientDataSummary } from "./report/client-data.js";
import { formatDuration } from "./report/format.js";
import { type PoolAssignment, type PoolShare, placementByRound } from "./report/pool-placement.js";
import type { RunConfig } from "./report/run-config.js";
import type { Expectations, Scenario } from "./schema.js";

export interface SummaryRound {
  round: number;
  accuracy: number;
  loss: number;
  participants: number;
  sampled: number;
  /** Failures by kind: timeout, disconnect, rejected, error. */
  failures: Partial<Record<FailureReason, number>>;
  dropouts: number;
  /** Over-selected clients called off once enough had finished. */
  cancelled: number;
  offline?: number;
  bytesSent: number;
  bytesReceived: number;
  seconds: number;
  /** Wall seconds from the first round's start to this round's start. */
  startSeconds?: number;
  /** Virtual clock: simulated seconds since the run began at the round's start, and its simulated duration. */
  simulatedStart?: number;
  simulatedSeconds?: number;
  /** Virtual clock: the federated evaluation's simulated seconds, and each SecAgg stage's (both inside simulatedSeconds). */
  simulatedEvaluationSeconds?: number;
  simulatedStages?: Record<string, number>;
  trainLoss?: number;
  /** L2 norms of the accepted updates (plain and envelope rounds only). */
  updateNorms?: Distribution;
  epsilon?: number;
  clipNorm?: number;
  kept?: string;
  /** False when centralised evaluation skipped the round; accuracy and loss repeat the last one. */
  evaluated?: false;
  /** Federated evaluation: example-weighted accuracy and loss over the clients that scored. */
  federatedAccuracy?: number;
  federatedLoss?: number;
  federatedClients?: number;
  /** What the strategy reported, and the clients' metrics as its aggregation functions combined them. */
  strategyMetrics?: Record<string, number>;
  fitMetrics?: Record<string, number>;
  federatedMetrics?: Record<string, number>;
  /** Asynchronous strategies: staleness τ of the version's updates. */
  staleness?: { mean: number; max: number };
  /** Remote pools: which pool hosted how many clients (report/pool-placement.ts says when). */
  pools?: PoolShare[];
}

/** One update an asynchronous run aggregated (metrics.jsonl has the same per version). */
export interface UpdateEntry {
  /** The version it went into (its record's round). */
  round: number;
  clientId: string;
  label?: string;
  /** The version it trained on, its staleness τ, and its factor s(τ) or α·s(τ). */
  trainedOn: number;
  staleness: number;
  weight: number;
  numExamples: number;
  /** Wall seconds from request to reply; on the virtual clock also simulated seconds and arrival. */
  seconds: number;
  simulatedSeconds?: number;
  simulatedArrivedAt?: number;
}

/** One client's fit in one round, for the report's timeline. */
export interface TimelineEntry {
  round: number;
  clientId: string;
  label?: string;
  /** Seconds from the run's first round to the fit request. */
  startSeconds: number;
  seconds: number;
  trainSeconds?: number;
  outcome: string;
  /** Virtual clock: simulated seconds since the run began at which the request left and the outcome came. */
  simulatedSentAt?: number;
  simulatedArrivedAt?: number;
}

/** How a run on the virtual clock was simulated. */
export interface VirtualClockSummary {
  /** The device fleet: a built-in fleet's name, "scenario" for inline profiles, or the profile file. */
  fleet: string;
  /**
   * Seconds per example per epoch at speed 1: measured on this machine, pinned by the scenario,
   * or the built-in fleet's published cost.
   */
  secondsPerExample: number;
  secondsPerExampleSource: "measured" | "scenario" | "fleet";
  /** Hour of the day (0–24) at which the simulated run began. */
  startHour: number;
  /** A round's deadline in simulated seconds. */
  deadlineSeconds: number;
  /** Simulated seconds from the run's start to the end of its last round. */
  simulatedSeconds: number;
  /** The scenario's simulated-time budget (virtual.simulatedHours), in seconds. */
  budgetSeconds?: number;
}

export interface RunSummary {
  scenario: string;
  backend: string;
  /** How the virtual clients train: the native fast path, or tfjs autodiff and why (absent in older runs). */
  training?: { path: TrainPath; reason?: string };
  strategy: string;
  seed: number;
  /**
   * How each round's clients were drawn: from the seed, or from a CSPRNG (under DP, where a
   * predictable sample would void the accountant's assumption; then not reproducible).
   */
  sampling?: "seeded" | "csprng";
  clients: { connected: number; sampledPerRound: number };
  /** What was run: model, data, partition, fit, strategy options, privacy, seed. */
  config?: RunConfig;
  /** What each simulated client held (the runner knows the partitions; a coordinator does not). */
  clientData?: ClientDataSummary;
  initial: { accuracy: number; loss: number };
  rounds: SummaryRound[];
  final: { accuracy: number; loss: number; epsilon?: number; delta?: number };
  seconds: number;
  stopReason?: string;
  expectations: { name: string; passed: boolean; detail: string }[];
  timeline: TimelineEntry[];
  /** Asynchronous strategies: every aggregated update with its staleness. */
  updates?: UpdateEntry[];
  virtualClock?: VirtualClockSummary;
}

/** What a run's summary.json is made of; the scenario runner and `fedsim coordinator` both fill it. */
export interface RunSummaryInput {
  name: string;
  backend: string;
  training?: RunSummary["training"];
  strategy: string;
  seed: number;
  sampling: NonNullable<RunSummary["sampling"]>;
  clients: RunSummary["clients"];
  config?: RunSummary["config"];
  clientData?: RunSummary["clientData"];
  initial: RunSummary["initial"];
  records: readonly RoundRecord[];
  /** The model's last evaluation; default: the last evaluated round's (a run stopped midway). */
  final?: { accuracy: number; loss: number };
  /** DP's δ, reported beside the last round's ε. */
  delta?: number;
  seconds: number;
  stopReason?: string;
  expect?: Scenario["expect"];
  /** Client id → readable name for the timeline and updates. */
  labels?: ReadonlyMap<string, string>;
  asynchronous: boolean;
  virtualClock?: VirtualClockSummary;
  /** Remote pools: every spread of the clients over the pools the run made. */
  poolPlacement?: readonly PoolAssignment[];
}

/** The run's summary, from its round records: what summary.json holds and the report draws. */
export function buildRunSummary(input: RunSummaryInput): RunSummary {
  const origin = input.records.find((r) => r.startedAt !== undefined)?.startedAt;
  const placement = input.poolPlacement
    ? placementByRound(
        input.poolPlacement,
        input.records.map((r) => r.round),
      )
    : undefined;
  const rounds = input.records.map((r) => {
    const pools = placement?.get(r.round);
    return { ...summaryRound(r, origin), ...(pools ? { pools } : {}) };
  });
  const latest = [...input.records].reverse();
  const lastEps = latest.find((r) => r.epsilon !== undefined)?.epsilon;
  const evaluated = latest.find((r) => r.evaluated !== false);
  const model =
    input.final ?? (evaluated ? { accuracy: evaluated.accuracy, loss: evaluated.loss } : input.initial);
  const final = {
    accuracy: model.accuracy,
    loss: model.loss,
    ...(lastEps !== undefined ? { epsilon: lastEps, delta: input.delta } : {}),
  };
  const labels = input.labels ?? new Map<string, string>();
  return {
    scenario: input.name,
    backend: input.backend,
    ...(input.training ? { training: input.training } : {}),
    strategy: input.strategy,
    seed: input.seed,
    sampling: input.sampling,
    clients: input.clients,
    ...(input.config ? { config: input.config } : {}),
    ...(input.clientData ? { clientData: input.clientData } : {}),
    initial: input.initial,
    rounds,
    final,
    seconds: input.seconds,
    ...(input.stopReason ? { stopReason: input.stopReason } : {}),
    expectations: checkExpectations({ expect: input.expect }, final, rounds, input.initial),
    timeline: buildTimeline(input.records, labels),
    ...(input.asynchronous ? { updates: buildUpdates(input.records, labels) } : {}),
    ...(input.virtualClock ? { virtualClock: input.virtualClock } : {}),
  };
}

/**
 * A round as summary.json shows it; `origin` (ms since the epoch, the first round's start) places
 * it on the wall clock. Tolerates records of older checkpoints, which lack some fields.
 */
export function summaryRound(r: RoundRecord, origin?: number): SummaryRound {
  return {
    round: r.round,
    accuracy: r.accuracy,
    loss: r.loss,
    participants: r.participants,
    sampled: r.sampled,
    failures: r.failuresByKind ?? (r.failures > 0 ? { error: r.failures } : {}),
    dropouts: r.dropouts ?? 0,
    cancelled: r.cancelled ?? 0,
    ...(r.offline !== undefined ? { offline: r.offline } : {}),
    bytesSent: r.bytesSent ?? 0,
    bytesReceived: r.bytesReceived ?? 0,
    seconds: r.seconds,
    ...(origin !== undefined && r.startedAt !== undefined
      ? { startSeconds: (r.startedAt - origin) / 1000 }
      : {}),
    ...(r.simulatedStart !== undefined ? { simulatedStart: r.simulatedStart } : {}),
    ...(r.simulatedSeconds !== undefined ? { simulatedSeconds: r.simulatedSeconds } : {}),
    ...(r.federated?.simulatedSeconds !== undefined
      ? { simulatedEvaluationSeconds: r.federated.simulatedSeconds }
      : {}),
    ...(r.simulatedStages ? { simulatedStages: r.simulatedStages } : {}),
    ...(r.trainLoss !== undefined ? { trainLoss: r.trainLoss } : {}),
    ...(r.updateNorms ? { updateNorms: r.updateNorms } : {}),
    ...(r.epsilon !== undefined ? { epsilon: r.epsilon } : {}),
    ...(r.clipNorm !== undefined ? { clipNorm: r.clipNorm } : {}),
    ...(r.kept ? { kept: r.kept } : {}),
    ...(r.evaluated === false ? { evaluated: false as const } : {}),
    ...(r.federated
      ? {
          federatedAccuracy: r.federated.accuracy,
          federatedLoss: r.federated.loss,
          federatedClients: r.federated.clients,
          ...(r.federated.metrics ? { federatedMetrics: r.federated.metrics } : {}),
        }
      : {}),
    ...(r.strategy ? { strategyMetrics: r.strategy } : {}),
    ...(r.fitMetrics ? { fitMetrics: r.fitMetrics } : {}),
    ...(r.staleness ? { staleness: r.staleness } : {}),
  };
}

/** The updates of an asynchronous run, version by version, labelled like the timeline. */
export function buildUpdates(
  records: readonly RoundRecord[],
  labels: ReadonlyMap<string, string> = new Map(),
): UpdateEntry[] {
  return records.flatMap((r) =>
    (r.updates ?? []).map((u) => {
      const label = labels.get(u.clientId);
      return { round: r.round, ...u, ...(label ? { label } : {}) };
    }),
  );
}

/**
 * Every client's fit across the run, timed from the first round's start. `labels` maps client
 * ids to readable names (the runner knows which virtual client holds which key).
 */
export function buildTimeline(
  records: readonly RoundRecord[],
  labels: ReadonlyMap<string, string> = new Map(),
): TimelineEntry[] {
  const origin = records.find((r) => r.startedAt !== undefined)?.startedAt ?? 0;
  const out: TimelineEntry[] = [];
  for (const r of records) {
    for (const c of r.clients ?? []) {
      const label = labels.get(c.clientId);
      out.push({
        round: r.round,
        clientId: c.clientId,
        ...(label ? { label } : {}),
        startSeconds: ((r.startedAt ?? origin) - origin) / 1000 + c.startSeconds,
        seconds: c.seconds,
        ...(c.trainSeconds !== undefined ? { trainSeconds: c.trainSeconds } : {}),
        outcome: c.outcome,
        ...(c.simulatedSentAt !== undefined ? { simulatedSentAt: c.simulatedSentAt } : {}),
        ...(c.simulatedArrivedAt !== undefined ? { simulatedArrivedAt: c.simulatedArrivedAt } : {}),
      });
    }
  }
  return out;
}

/** Total failures of a summary round. */
export function failureCount(r: SummaryRound): number {
  return Object.values(r.failures).reduce((a, b) => a + (b ?? 0), 0);
}

/** The value each expectation checks, measured over the run. */
export function expectationValues(
  final: { accuracy: number; loss: number; epsilon?: number },
  rounds: readonly SummaryRound[],
  initial?: { accuracy: number },
): Record<keyof Expectations, number | undefined> {
  const total = (value: (r: SummaryRound) => number) => rounds.reduce((sum, r) => sum + value(r), 0);
  const evaluated = rounds.filter((r) => r.evaluated !== false).map((r) => r.accuracy);
  const accuracies = [...(initial ? [initial.accuracy] : []), ...evaluated, final.accuracy];
  return {
    finalAccuracy: final.accuracy,
    bestAccuracy: Math.max(...accuracies.filter(Number.isFinite)),
    finalLoss: final.loss,
    epsilon: final.epsilon,
    rounds: rounds.length,
    timeouts: total((r) => r.failures.timeout ?? 0),
    dropouts: total((r) => r.dropouts),
    failures: total(failureCount),
    cancelled: total((r) => r.cancelled),
    minParticipants: rounds.length > 0 ? Math.min(...rounds.map((r) => r.participants)) : undefined,
    keptRounds: rounds.filter((r) => r.kept !== undefined).length,
  };
}

/** Checks the scenario's `expect` block against the run. */
export function checkExpectations(
  scenario: Pick<Scenario, "expect">,
  final: { accuracy: number; loss: number; epsilon?: number },
  rounds: readonly SummaryRound[] = [],
  initial?: { accuracy: number },
): RunSummary["expectations"] {
  const out: RunSummary["expectations"] = [];
  const values = expectationValues(final, rounds, initial);
  const show = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(4));
  for (const [name, bound] of Object.entries(scenario.expect ?? {}) as [
    keyof Expectations,
    { gte?: number; lte?: number } | undefined,
  ][]) {
    if (!bound) continue;
    const value = values[name];
    if (value === undefined) {
      out.push({ name, passed: false, detail: `${name} was not measured` });
      continue;
    }
    if (bound.gte !== undefined) {
      out.push({ name, passed: value >= bound.gte, detail: `${name} ${show(value)} ≥ ${bound.gte}` });
    }
    if (bound.lte !== undefined) {
      out.push({ name, passed: value <= bound.lte, detail: `${name} ${show(value)} ≤ ${bound.lte}` });
    }
  }
  return out;
}

/** The per-round table printed at the end of a run. */
export function formatTable(rounds: readonly SummaryRound[], withEpsilon: boolean): string {
  const simulated = rounds.some((r) => r.simulatedSeconds !== undefined);
  const header = [
    "round",
    "accuracy",
    "loss",
    "participants",
    "failures",
    "seconds",
    ...(simulated ? ["simulated end"] : []),
    ...(withEpsilon ? ["epsilon"] : []),
  ];
  const rows = rounds.map((r) => [
    String(r.round),
    r.accuracy.toFixed(4),
    r.loss.toFixed(4),
    String(r.participants),
    String(failureCount(r)),
    r.seconds.toFixed(1),
    ...(simulated
      ? [formatDuration((r.simulatedStart ?? Number.NaN) + (r.simulatedSeconds ?? Number.NaN))]
      : []),
    ...(withEpsilon ? [r.epsilon !== undefined ? r.epsilon.toFixed(3) : "-"] : []),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i])).join("  ");
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}
