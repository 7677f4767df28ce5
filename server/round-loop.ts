import { describeError, ErrorCode, FedsimError } from "../common/errors.js";
import { createRng, cryptoRng, type Rng, sampleWithoutReplacement } from "../common/rng.js";
import type { AggregationInput, ClientFailure, FailureReason } from "../common/strategy/strategy.js";
import { type FlatWeights, selectTensors } from "../common/weights.js";
import type { ClientProxy, FitOutcome, FitRequest, FitSuccess } from "./client-proxy.js";
import { waitForMinimum, waitForOnline } from "./client-wait.js";
import { federatedEvaluationOf } from "./federated-evaluation.js";
import {
  type CollectedFit,
  collectFits,
  meanTrainLoss,
  toClientUpdate,
  updateNormsOf,
} from "./fit-collection.js";
import { aggregateRound } from "./round-aggregate.js";
import type { RoundLoopOptions } from "./round-options.js";
import type { PluginTime, RoundPreparation } from "./round-plugin.js";
import type { EvaluationResult, RoundPhase, RoundRecord } from "./round-record.js";
import {
  budgetReached,
  collectVirtualFits,
  nextAvailableTime,
  type VirtualClock,
  virtualTiming,
  withinBudget,
} from "./virtual-round.js";

/**
 * The coordinator's round state machine:
 * WAITING_FOR_CLIENTS → CONFIGURE_FIT → COLLECTING → [UNMASKING] → AGGREGATING → EVALUATING →
 * CHECKPOINTING → next round | DONE. It talks to clients only through ClientDirectory/ClientProxy,
 * so tests can drive it in memory.
 */
export class RoundLoop {
  private readonly options: RoundLoopOptions;
  /** Seeded: reproducible runs, and the state a checkpoint keeps. */
  private readonly rng: Rng;
  /** Who trains: the seeded stream, or a CSPRNG when the plugin needs a secret sample. */
  private readonly samplingRng: Rng;
  private stopped: string | null = null;
  /** The simulated clock's reading (virtual clock only): when the next round may sample. */
  private simulatedNow: number;
  readonly records: RoundRecord[] = [];

  constructor(options: RoundLoopOptions) {
    this.options = options;
    this.rng = createRng(options.resume ? options.resume.rngState : options.seed);
    this.samplingRng = options.plugin?.protection?.secretSampling ? cryptoRng() : this.rng;
    if (options.resume) this.records.push(...options.resume.records);
    const last = this.records.at(-1);
    const clock = options.virtualClock;
    this.simulatedNow =
      last?.simulatedStart !== undefined && last.simulatedSeconds !== undefined
        ? last.simulatedStart + last.simulatedSeconds + (clock?.serverSeconds ?? 0)
        : (clock?.startSeconds ?? 0);
    if (options.federatedEvaluation && options.plugin?.protection?.hidesClientReports) {
      throw new FedsimError(
        ErrorCode.INCOMPATIBLE_OPTIONS,
        "federated evaluation sends each client's loss, accuracy and example count to the coordinator, which DP and secure aggregation keep from it; evaluate centrally instead",
      );
    }
    if (options.rounds < 0 || !Number.isInteger(options.rounds)) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `rounds must be an integer ≥ 0, got ${options.rounds}`);
    }
    const every = options.evaluateEvery ?? 1;
    if (!Number.isInteger(every) || every < 1) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `evaluateEvery must be an integer ≥ 1, got ${every}`);
    }
    const over = options.overSelection ?? 0;
    if (!(over >= 0 && over <= 10)) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `overSelection must be in [0, 10], got ${over}`);
    }
  }

  /** The seeded stream's state; under secret sampling it is not what picks the clients. */
  rngState(): number[] {
    return this.rng.state();
  }

  /** False when each round's clients come from a CSPRNG (DP): the seed does not decide who trains. */
  get samplingReproducible(): boolean {
    return this.samplingRng === this.rng;
  }

  /** The global model's weights (all tensors), as aggregation last left them. */
  get globalWeights(): FlatWeights {
    return this.options.model;
  }

  stop(reason: string): void {
    this.stopped = reason;
  }

  get stopReason(): string | null {
    return this.stopped;
  }

  async evaluateCurrent(): Promise<EvaluationResult> {
    return this.options.evaluate(this.options.model);
  }

  async run(): Promise<RoundRecord[]> {
    const start = (this.records.at(-1)?.round ?? 0) + 1;
    if (!this.samplingReproducible) {
      this.log(`configureFit: ${SECRET_SAMPLING_NOTICE}`);
    }
    for (let round = start; round <= this.options.rounds; round++) {
      const stopReason =
        this.stopped ?? this.options.plugin?.shouldStop?.(round) ?? this.budgetStop() ?? null;
      if (stopReason) {
        this.stopped = stopReason;
        this.log(`round ${round}: stopping: ${stopReason}`);
        break;
      }
      const record = await this.runRound(round);
      this.records.push(record);
      await this.options.onRound?.(record);
    }
    this.phase(this.options.rounds, "DONE");
    return this.records;
  }

  /** On the virtual clock with a budget: why no further round may start, if none may. */
  private budgetStop(): string | null {
    const clock = this.options.virtualClock;
    if (clock?.budgetSeconds === undefined) return null;
    const ids = this.options.directory.connected().map((c) => c.id);
    return withinBudget(clock, ids, this.simulatedNow) ? null : budgetReached(clock.budgetSeconds);
  }

  async runRound(round: number): Promise<RoundRecord> {
    const o = this.options;
    const started = performance.now();
    const startedAt = Date.now();
    this.phase(round, "WAITING_FOR_CLIENTS");
    const scripted = await o.beforeRound?.(round);
    const log = (line: string) => this.log(line);
    const connected = scripted
      ? await waitForOnline(o.directory, round, scripted, o.waitForClientsMs, log)
      : await waitForMinimum(o.directory, round, o.minAvailableClients, o.waitForClientsMs, log);
    const available = this.availableNow(connected);
    const simulatedStart = this.simulatedNow;
    const offline = (scripted?.offline ?? 0) + connected.length - available.length;

    this.phase(round, "CONFIGURE_FIT");
    const plan = o.strategy.configureFit(round, available, this.samplingRng);
    const byId = new Map(available.map((c) => [c.id, c]));
    const chosen = plan.clientIds.map((id) => byId.get(id)).filter((c) => c !== undefined);
    const target = chosen.length;
    const sampled = [...chosen, ...this.overSelect(available, chosen)];
    this.log(
      `configureFit: sampled ${sampled.length} of ${available.length} clients` +
        (sampled.length > target ? ` (${target} needed, ${sampled.length - target} over-selected)` : ""),
    );
    o.onSampled?.(
      round,
      sampled.map((c) => c.id),
    );
    const base = {
      round,
      startedAt,
      ...(o.virtualClock ? { simulatedStart, simulatedSeconds: 0 } : {}),
      sampled: sampled.length,
      ...(scripted?.offline !== undefined || o.virtualClock ? { offline } : {}),
    };
    // SecAgg's stages on the virtual clock: their simulated seconds by stage, for the record.
    const stages: Record<string, number> = {};
    const setupTime = this.pluginTime(stages);
    let prep: RoundPreparation;
    try {
      prep = (await o.plugin?.prepareRound?.(round, sampled, available.length, setupTime)) ?? {};
    } catch (err) {
      // A round that cannot even be prepared (e.g. SecAgg below threshold) keeps the model.
      this.log(`round ${round}: preparation failed: ${describeError(err)}`);
      const evaluation = await this.evaluateRound(round);
      this.simulatedNow = setupTime?.end ?? this.simulatedNow;
      return {
        ...base,
        ...(setupTime ? { simulatedSeconds: setupTime.end - simulatedStart, ...stagesOf(stages) } : {}),
        accuracy: evaluation.accuracy,
        loss: evaluation.loss,
        ...(evaluation.skipped ? { evaluated: false as const } : {}),
        participants: 0,
        failures: sampled.length,
        failureDetails: [],
        failuresByKind: { error: sampled.length },
        dropouts: 0,
        cancelled: 0,
        bytesSent: 0,
        bytesReceived: 0,
        clients: [],
        seconds: (performance.now() - started) / 1000,
        kept: `round could not be prepared: ${describeError(err)}`,
      };
    }
    if (setupTime) this.simulatedNow = setupTime.end;
    const excludedIds = new Set((prep.excluded ?? []).map((f) => f.clientId));
    const training = sampled.filter((c) => !excludedIds.has(c.id));
    const weights = selectTensors(o.model, o.trainable as Set<string>);
    const frozenNames = new Set(o.model.specs.map((s) => s.name).filter((n) => !o.trainable.has(n)));
    const frozen = frozenNames.size > 0 ? selectTensors(o.model, frozenNames) : null;
    const request: FitRequest = {
      round,
      config: plan.config,
      weights,
      frozen,
      ...(prep.dp ? { dp: prep.dp } : {}),
      ...(prep.envelope ? { envelope: prep.envelope } : {}),
      ...(prep.secagg ? { secagg: prep.secagg } : {}),
    };

    this.phase(round, "COLLECTING", `${training.length} clients`);
    const fitted = o.virtualClock
      ? await this.collectVirtual(round, o.virtualClock, request, training, target, sampled.length, started)
      : await collectFits({
          round,
          request,
          training,
          target,
          deadlineMs: o.deadlineMs,
          roundStart: started,
          onOutcome: (outcome) => o.onClientOutcome?.(round, outcome, sampled.length),
        });
    const outcomes: FitOutcome[] = [...(prep.excluded ?? []), ...fitted.map((f) => f.outcome)];
    const successes = outcomes.filter((x): x is FitSuccess => x.ok);
    // Before aggregation, which may reuse the deltas' buffers.
    const updateNorms = updateNormsOf(successes, request);
    // Cancelled clients still go to the plugin and strategy as failures (SecAgg must unmask
    // around them), but the record counts them apart: over-selection planned for them.
    const failures: ClientFailure[] = outcomes
      .filter((x) => !x.ok)
      .map((f) => ({ clientId: f.clientId, reason: f.reason, code: f.code, message: f.message }));
    const realFailures = failures.filter((f) => f.reason !== "cancelled");
    for (const f of realFailures)
      this.log(`round ${round}: ${f.clientId} failed (${f.reason}, ${f.code}): ${f.message}`);
    const failuresByKind: Partial<Record<FailureReason, number>> = {};
    for (const f of realFailures) failuresByKind[f.reason] = (failuresByKind[f.reason] ?? 0) + 1;

    let input: AggregationInput | null;
    let collectError = "";
    const arrivals = new Map(fitted.map((f) => [f.outcome.clientId, f.timing.simulatedArrivedAt ?? 0]));
    const unmaskTime = this.pluginTime(stages, arrivals);
    try {
      if (o.plugin?.collect) {
        this.phase(round, "UNMASKING");
        input = await o.plugin.collect(round, successes, failures, null, unmaskTime);
      } else {
        input = { kind: "individual", updates: successes.map(toClientUpdate) };
      }
    } catch (err) {
      collectError = describeError(err);
      this.log(`round ${round}: could not collect updates: ${collectError}`);
      input = null;
    }
    if (unmaskTime) this.simulatedNow = unmaskTime.end;

    this.phase(round, "AGGREGATING");
    const { kept, strategyMetrics, fitMetrics } =
      input === null
        ? {
            kept: `updates could not be collected: ${collectError}`,
            strategyMetrics: {},
            fitMetrics: undefined,
          }
        : aggregateRound(o.strategy, o.model, round, weights, input, failures);
    if (kept) this.log(`round ${round}: keeping the previous model: ${kept}`);
    const extra = o.plugin?.afterAggregate?.(round, successes, kept !== undefined) ?? {};

    this.phase(round, "EVALUATING");
    const evaluation = await this.evaluateRound(round);
    // Clients that trained on the weights being scored (the round kept them) need not download them.
    const holding = new Set(kept === undefined ? [] : successes.map((x) => x.clientId));
    const clock = o.virtualClock;
    const federated = await federatedEvaluationOf(o, round, (line) => this.log(line), {
      ...(clock ? { simulated: { clock, sentAt: this.simulatedNow, holding } } : {}),
    });
    this.simulatedNow += federated?.simulatedSeconds ?? 0;
    const simulatedSeconds = this.simulatedNow - simulatedStart;
    this.simulatedNow += o.virtualClock?.serverSeconds ?? 0;
    const trainLoss = meanTrainLoss(successes);
    this.phase(round, "CHECKPOINTING");
    o.plugin?.endRound?.(round);
    return {
      ...base,
      accuracy: evaluation.accuracy,
      loss: evaluation.loss,
      ...(evaluation.skipped ? { evaluated: false as const } : {}),
      participants: successes.length,
      failures: realFailures.length,
      failureDetails: realFailures.map((f) => ({ clientId: f.clientId, reason: f.reason, code: f.code })),
      failuresByKind,
      dropouts: failuresByKind.disconnect ?? 0,
      cancelled: failures.length - realFailures.length,
      bytesSent: sumOf(outcomes, (x) => x.bytes?.sent ?? 0),
      bytesReceived: sumOf(outcomes, (x) => x.bytes?.received ?? 0),
      clients: fitted.map((f) => f.timing),
      ...(o.virtualClock ? { simulatedSeconds } : {}),
      ...stagesOf(stages),
      ...(federated ? { federated } : {}),
      seconds: (performance.now() - started) / 1000,
      ...(kept ? { kept } : {}),
      ...(trainLoss !== undefined ? { trainLoss } : {}),
      ...(updateNorms ? { updateNorms } : {}),
      ...(Object.keys(strategyMetrics).length > 0 ? { strategy: strategyMetrics } : {}),
      ...(fitMetrics && Object.keys(fitMetrics).length > 0 ? { fitMetrics } : {}),
      ...extra,
    };
  }

  /** Centralised evaluation, or the last one repeated on rounds that evaluateEvery skips. */
  private async evaluateRound(round: number): Promise<EvaluationResult & { skipped?: true }> {
    const o = this.options;
    const every = o.evaluateEvery ?? 1;
    const last = [...this.records].reverse().find((r) => r.evaluated !== false);
    if (round % every !== 0 && round !== o.rounds && last) {
      return { accuracy: last.accuracy, loss: last.loss, skipped: true };
    }
    return o.evaluate(o.model);
  }

  /** On the virtual clock, where a plugin's messages start (now); undefined on the real clock. */
  private pluginTime(
    stages: Record<string, number>,
    arrivals = new Map<string, number>(),
  ): PluginTime | undefined {
    const clock = this.options.virtualClock;
    if (!clock) return undefined;
    return { clock, start: this.simulatedNow, arrivals, stages, end: this.simulatedNow };
  }

  /**
   * On the virtual clock, the connected clients available at the simulated time (the clock idles
   * forward while none is); on the real clock, all of them.
   */
  private availableNow(connected: ClientProxy[]): ClientProxy[] {
    const clock = this.options.virtualClock;
    if (!clock) return connected;
    const { at, available } = nextAvailableTime(
      clock,
      connected.map((c) => c.id),
      this.simulatedNow,
    );
    this.simulatedNow = at;
    const ids = new Set(available);
    return connected.filter((c) => ids.has(c.id));
  }

  /** collectFits (server/fit-collection.ts) on the virtual clock: real training, decided in simulated-time order. */
  private async collectVirtual(
    round: number,
    clock: VirtualClock,
    request: FitRequest,
    training: readonly ClientProxy[],
    target: number,
    sampledCount: number,
    roundStart: number,
  ): Promise<CollectedFit[]> {
    const { fits, end } = await collectVirtualFits({
      clock,
      request,
      training,
      target,
      sentAt: this.simulatedNow,
      wallDeadlineMs: this.options.deadlineMs,
      wallStart: roundStart,
    });
    this.simulatedNow = end;
    for (const fit of fits) this.options.onClientOutcome?.(round, fit.outcome, sampledCount);
    return fits.map((fit) => ({ outcome: fit.outcome, timing: virtualTiming(fit) }));
  }

  /** Extra clients beyond the strategy's sample, drawn like the sample itself. */
  private overSelect(available: readonly ClientProxy[], chosen: readonly ClientProxy[]): ClientProxy[] {
    const over = this.options.overSelection ?? 0;
    if (over <= 0 || chosen.length === 0) return [];
    const taken = new Set(chosen.map((c) => c.id));
    const rest = available.filter((c) => !taken.has(c.id)).sort((a, b) => (a.id < b.id ? -1 : 1));
    const extra = Math.ceil(chosen.length * over);
    return sampleWithoutReplacement(rest.length, extra, this.samplingRng).map((i) => rest[i]);
  }

  private phase(round: number, phase: RoundPhase, detail?: string): void {
    this.options.onPhase?.(round, phase, detail);
  }

  private log(line: string): void {
    this.options.log?.(line);
  }
}

/** What a run under DP says about its sampling (logs, CLI output). */
export const SECRET_SAMPLING_NOTICE =
  "clients are sampled with a CSPRNG under DP, so who trains in each round is not reproducible from the seed";

function stagesOf(stages: Record<string, number>): { simulatedStages?: Record<string, number> } {
  return Object.keys(stages).length > 0 ? { simulatedStages: stages } : {};
}

function sumOf<T>(items: readonly T[], value: (item: T) => number): number {
  let total = 0;
  for (const item of items) total += value(item);
  return total;
}
