import { describeError, ErrorCode, FedsimError } from "../common/errors.js";
import type { DpClientConfig } from "../common/protocol.js";
import { createRng, cryptoRng, deriveSeed, type Rng, sampleWithoutReplacement } from "../common/rng.js";
import type {
  AggregationInput,
  ClientFailure,
  ClientUpdate,
  FailureReason,
  Strategy,
} from "../common/strategy/strategy.js";
import { firstNonFiniteIndex } from "../common/vector-passes.js";
import { type FlatWeights, mergeTensors, selectTensors } from "../common/weights.js";
import type { StalenessSummary, UpdateRecord } from "./async-records.js";
import type {
  ClientDirectory,
  ClientProxy,
  FitFailure,
  FitOutcome,
  FitRequest,
  FitSuccess,
} from "./client-proxy.js";
import { collectVirtualFits, nextAvailableTime, type VirtualClock, virtualTiming } from "./virtual-round.js";

export type RoundPhase =
  | "WAITING_FOR_CLIENTS"
  | "CONFIGURE_FIT"
  | "COLLECTING"
  | "UNMASKING"
  | "AGGREGATING"
  | "EVALUATING"
  | "CHECKPOINTING"
  | "DONE";

export interface EvaluationResult {
  loss: number;
  accuracy: number;
}

export interface RoundRecord {
  round: number;
  accuracy: number;
  loss: number;
  participants: number;
  sampled: number;
  failures: number;
  failureDetails: { clientId: string; reason: string; code: string }[];
  seconds: number;
  /** Present when the round kept the previous model, saying why. */
  kept?: string;
  /**
   * False when centralised evaluation skipped this round (evaluateEvery > 1); accuracy and loss
   * then repeat the last evaluation.
   */
  evaluated?: false;
  /** Mean of the participants' reported training losses; absent under DP or SecAgg, where none are sent. */
  trainLoss?: number;
  epsilon?: number;
  clipNorm?: number;
  /** What the strategy reported (e.g. droppedPartial, krumSelected). */
  strategy?: Record<string, number>;
  /** Wall-clock start of the round (ms since the epoch). */
  startedAt: number;
  /** Virtual clock only: simulated seconds since the run began at which the round sampled. */
  simulatedStart?: number;
  /** Virtual clock only: the round's simulated duration, from sampling to its last accepted outcome. */
  simulatedSeconds?: number;
  /** Failures by kind (timeout, disconnect, rejected, error); over-selection's cancels are not failures. */
  failuresByKind: Partial<Record<FailureReason, number>>;
  /** Sampled clients whose connection dropped during the round. */
  dropouts: number;
  /** Over-selected clients called off because enough others had finished. */
  cancelled: number;
  /** Clients the scenario had offline this round (availability), when it says. */
  offline?: number;
  /** Payload bytes sent to and received from the sampled clients. */
  bytesSent: number;
  bytesReceived: number;
  /** When each sampled client's fit started and ended, for timelines. */
  clients: ClientTiming[];
  /** Federated evaluation: the global model scored by a sample of clients on their own data. */
  federated?: FederatedEvaluation;
  /** Asynchronous strategies (a round is a model version): staleness of its updates, and each update. */
  staleness?: StalenessSummary;
  updates?: UpdateRecord[];
}

export interface FederatedEvaluation {
  /** Example-weighted means over the clients that answered. */
  accuracy: number;
  loss: number;
  clients: number;
  examples: number;
  /** Asked clients that did not answer in time or refused. */
  failed: number;
}

export interface ClientTiming {
  clientId: string;
  /** Seconds from the round's start to the fit request. */
  startSeconds: number;
  /** Seconds from the request to the outcome. */
  seconds: number;
  /** The client's own report of its local training time (unprotected rounds only). */
  trainSeconds?: number;
  outcome: "ok" | FailureReason;
  /** Virtual clock only: simulated seconds since the run began at which the request left. */
  simulatedSentAt?: number;
  /**
   * Virtual clock only: when the outcome reached the coordinator in simulated time (a timeout:
   * the deadline; a cancel: when the coordinator called it off).
   */
  simulatedArrivedAt?: number;
}

/** What a scripted scenario says about the coming round, before it is sampled. */
export interface RoundAvailability {
  /** Clients that went offline for this round: never sampled, even if the server still sees them. */
  exclude: ReadonlySet<string>;
  /** How many clients are online this round: the loop waits until that many (not excluded) are connected. */
  expected: number;
  /** How many of the scenario's clients are offline (for the record). */
  offline?: number;
}

/**
 * Hooks that change what a round sends and how it aggregates, without the loop knowing the
 * algorithm: privacy (DP, envelopes) and secure aggregation plug in here.
 */
export interface RoundPlugin {
  /**
   * What the plugin's promise asks of the loop. `secretSampling`: draw each round's clients from
   * a CSPRNG, since DP's accounting assumes nobody can predict the sample. `hidesClientReports`:
   * clients report nothing about their data beside the protected update, so the loop refuses
   * federated evaluation, whose per-client answers nothing would protect.
   */
  readonly protection?: { secretSampling: boolean; hidesClientReports: boolean };
  /** Per-client DP settings and envelope key for this round. */
  prepareRound?(
    round: number,
    sampled: readonly ClientProxy[],
    available: number,
  ): Promise<RoundPreparation> | RoundPreparation;
  /**
   * Turns successes into the strategy's input (e.g. adds central noise, or unmasks a sum).
   * `previous` is what an earlier plugin in a composition made of them (server/plugins/compose.ts).
   */
  collect?(
    round: number,
    successes: FitSuccess[],
    failures: ClientFailure[],
    previous?: AggregationInput | null,
  ): Promise<AggregationInput | null> | AggregationInput | null;
  /** After aggregation (accountant step, adaptive clip update). Returns metrics for the record. */
  afterAggregate?(round: number, successes: FitSuccess[], kept: boolean): Record<string, number>;
  /** Checked before a round starts; a string stops the run with that reason. */
  shouldStop?(round: number): string | null;
  endRound?(round: number): void;
  /** Serialisable state for checkpoints (accountant ledger, adaptive clip norm, …). */
  state?(): unknown;
  restore?(state: unknown): void;
}

export interface RoundPreparation {
  dp?: DpClientConfig;
  envelope?: FitRequest["envelope"];
  secagg?: FitRequest["secagg"];
  /** Sampled clients that already failed during preparation (e.g. a SecAgg key stage). */
  excluded?: FitFailure[];
}

export interface RoundLoopOptions {
  strategy: Strategy;
  directory: ClientDirectory;
  /** Full model weights (all tensors); updated in place only by a successful aggregation. */
  model: FlatWeights;
  /** Names of the tensors that train and travel; the rest stay frozen. */
  trainable: ReadonlySet<string>;
  evaluate: (model: FlatWeights) => Promise<EvaluationResult>;
  rounds: number;
  /** Centralised evaluation every k rounds (and always after the last). Default 1. */
  evaluateEvery?: number;
  /** Federated evaluation after aggregation, on this fraction of the connected clients. */
  federatedEvaluation?: { fraction: number; everyRounds: number; timeoutMs: number };
  deadlineMs: number;
  /** How many clients must be connected before a round starts. */
  minAvailableClients: number;
  waitForClientsMs?: number;
  seed: number;
  plugin?: RoundPlugin;
  onRound?: (record: RoundRecord) => void | Promise<void>;
  onPhase?: (round: number, phase: RoundPhase, detail?: string) => void;
  /** Called with the round's sample (over-selected clients included) before any request leaves. */
  onSampled?: (round: number, clientIds: readonly string[]) => void;
  /** Called as each sampled client's outcome arrives (progress bars). */
  onClientOutcome?: (round: number, outcome: FitOutcome, sampled: number) => void;
  log?: (line: string) => void;
  /** Awaited before each round (scripted availability, scenario hooks). */
  beforeRound?: (round: number) => Promise<RoundAvailability | undefined> | RoundAvailability | undefined;
  /**
   * Over-selection: sample this fraction more clients than the strategy asks for and aggregate
   * the first ones to finish; the rest are cancelled (Bonawitz et al. 2019, §2.2).
   */
  overSelection?: number;
  /**
   * Run on the virtual clock (server/virtual-round.ts): sample only available clients, and decide
   * deadlines, dropouts and over-selection in simulated time. `deadlineMs` is then only the
   * wall-clock safety net of each real fit.
   */
  virtualClock?: VirtualClock;
  /** Continue a checkpointed run: the rounds already done, and the sampling RNG's state. */
  resume?: { records: RoundRecord[]; rngState: number[] };
}

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
      const stopReason = this.stopped ?? this.options.plugin?.shouldStop?.(round) ?? null;
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

  async runRound(round: number): Promise<RoundRecord> {
    const o = this.options;
    const started = performance.now();
    const startedAt = Date.now();
    this.phase(round, "WAITING_FOR_CLIENTS");
    const scripted = await o.beforeRound?.(round);
    const connected = scripted ? await this.waitForOnline(round, scripted) : await this.waitForMinimum(round);
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
    let prep: RoundPreparation;
    try {
      prep = (await o.plugin?.prepareRound?.(round, sampled, available.length)) ?? {};
    } catch (err) {
      // A round that cannot even be prepared (e.g. SecAgg below threshold) keeps the model.
      this.log(`round ${round}: preparation failed: ${describeError(err)}`);
      const evaluation = await this.evaluateRound(round);
      return {
        ...base,
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
      : await this.collectFits(round, request, training, target, sampled.length, started);
    const simulatedSeconds = this.simulatedNow - simulatedStart;
    this.simulatedNow += o.virtualClock?.serverSeconds ?? 0;
    const outcomes: FitOutcome[] = [...(prep.excluded ?? []), ...fitted.map((f) => f.outcome)];
    const successes = outcomes.filter((x): x is FitSuccess => x.ok);
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
    try {
      if (o.plugin?.collect) {
        this.phase(round, "UNMASKING");
        input = await o.plugin.collect(round, successes, failures);
      } else {
        input = { kind: "individual", updates: successes.map(toClientUpdate) };
      }
    } catch (err) {
      collectError = describeError(err);
      this.log(`round ${round}: could not collect updates: ${collectError}`);
      input = null;
    }

    this.phase(round, "AGGREGATING");
    let kept: string | undefined;
    let strategyMetrics: Record<string, number> = {};
    if (input === null) {
      kept = `updates could not be collected: ${collectError}`;
    } else {
      // The round's snapshot: the model has not changed since it was taken, and strategies never write
      // `current` (it may still be on its way to a slow client), so a second copy is not needed.
      const current = weights;
      let result: ReturnType<Strategy["aggregateFit"]>;
      // Momentum and moments move with every aggregation; an aggregate that is refused below must
      // not leave them poisoned for the rounds after.
      const strategyBefore = o.strategy.state();
      try {
        result = o.strategy.aggregateFit(round, current.values, current.specs, input, failures);
      } catch (err) {
        // A strategy that refuses its input (e.g. a robust rule given a sum) keeps the model.
        o.strategy.restore(strategyBefore);
        result = { weights: null, keptReason: `aggregation refused: ${describeError(err)}`, metrics: {} };
      }
      strategyMetrics = result.metrics;
      const nonFinite = result.weights === null ? -1 : firstNonFiniteIndex(result.weights);
      if (result.weights === null) {
        kept = result.keptReason ?? "strategy kept the previous model";
      } else if (result.weights.length !== current.values.length) {
        kept = "strategy returned weights of the wrong length";
      } else if (nonFinite >= 0) {
        kept = `${ErrorCode.BAD_AGGREGATE}: the aggregate is not finite (${result.weights[nonFinite]} at index ${nonFinite})`;
        o.strategy.restore(strategyBefore);
      } else {
        mergeTensors(o.model, { specs: current.specs, values: result.weights });
      }
    }
    if (kept) this.log(`round ${round}: keeping the previous model: ${kept}`);
    const extra = o.plugin?.afterAggregate?.(round, successes, kept !== undefined) ?? {};

    this.phase(round, "EVALUATING");
    const evaluation = await this.evaluateRound(round);
    const federated = await this.evaluateFederated(round);
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
      ...(federated ? { federated } : {}),
      seconds: (performance.now() - started) / 1000,
      ...(kept ? { kept } : {}),
      ...(trainLoss !== undefined ? { trainLoss } : {}),
      ...(Object.keys(strategyMetrics).length > 0 ? { strategy: strategyMetrics } : {}),
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

  /**
   * Asks a seeded sample of the connected clients to score the new global model on their own
   * data. Its own RNG stream, so turning it on does not change which clients train.
   */
  private async evaluateFederated(round: number): Promise<FederatedEvaluation | undefined> {
    const o = this.options;
    const spec = o.federatedEvaluation;
    if (!spec || (round % spec.everyRounds !== 0 && round !== o.rounds)) return undefined;
    const connected = o.directory
      .connected()
      .filter((c) => c.evaluate !== undefined)
      .sort((a, b) => (a.id < b.id ? -1 : 1));
    const count = Math.min(connected.length, Math.max(1, Math.ceil(spec.fraction * connected.length)));
    const rng = createRng(deriveSeed(o.seed, "federated-evaluation", round));
    const asked = sampleWithoutReplacement(connected.length, count, rng).map((i) => connected[i]);
    const frozenNames = new Set(o.model.specs.map((s) => s.name).filter((n) => !o.trainable.has(n)));
    const request = {
      round,
      weights: selectTensors(o.model, o.trainable as Set<string>),
      frozen: frozenNames.size > 0 ? selectTensors(o.model, frozenNames) : null,
    };
    const replies = await Promise.all(
      asked.map((c) =>
        (c.evaluate?.(request, spec.timeoutMs) ?? Promise.reject(new Error("no evaluate"))).catch((err) => {
          this.log(`round ${round}: federated evaluation by ${c.id} failed: ${describeError(err)}`);
          return null;
        }),
      ),
    );
    const answered = replies.filter((r) => r !== null && r.numExamples > 0);
    const examples = answered.reduce((n, r) => n + (r?.numExamples ?? 0), 0);
    const mean = (value: (r: { loss: number; accuracy: number; numExamples: number }) => number) =>
      examples > 0 ? answered.reduce((s, r) => s + (r ? value(r) * r.numExamples : 0), 0) / examples : 0;
    return {
      accuracy: mean((r) => r.accuracy),
      loss: mean((r) => r.loss),
      clients: answered.length,
      examples,
      failed: replies.filter((r) => r === null).length,
    };
  }

  /** The classic wait: at least minAvailableClients connected (or the wait times out). */
  private async waitForMinimum(round: number): Promise<ClientProxy[]> {
    const o = this.options;
    const enough = await o.directory.waitForClients(o.minAvailableClients, o.waitForClientsMs ?? 120_000);
    const available = o.directory.connected();
    if (!enough) {
      this.log(
        `round ${round}: only ${available.length} of ${o.minAvailableClients} clients connected; trying anyway`,
      );
    }
    return available;
  }

  /**
   * A scripted round: wait until the clients the scenario has online are connected, and sample
   * only among them, so a client whose disconnect the server has not yet seen is never picked.
   */
  private async waitForOnline(round: number, scripted: RoundAvailability): Promise<ClientProxy[]> {
    const o = this.options;
    const deadline = performance.now() + (o.waitForClientsMs ?? 120_000);
    const present = () => o.directory.connected().filter((c) => !scripted.exclude.has(c.id));
    let available = present();
    while (available.length < scripted.expected && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      available = present();
    }
    if (available.length < scripted.expected) {
      this.log(`round ${round}: only ${available.length} of ${scripted.expected} online clients connected`);
    }
    return available;
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

  /** collectFits on the virtual clock: real training, decided in simulated-time order. */
  private async collectVirtual(
    round: number,
    clock: VirtualClock,
    request: FitRequest,
    training: readonly ClientProxy[],
    target: number,
    sampledCount: number,
    roundStart: number,
  ): Promise<{ outcome: FitOutcome; timing: ClientTiming }[]> {
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

  /**
   * Sends the fit request to every training client and gathers the outcomes. Once `target`
   * successes are in, the clients still training are cancelled (over-selection).
   */
  private async collectFits(
    round: number,
    request: FitRequest,
    training: readonly ClientProxy[],
    target: number,
    sampledCount: number,
    roundStart: number,
  ): Promise<{ outcome: FitOutcome; timing: ClientTiming }[]> {
    const o = this.options;
    const pending = new Set(training);
    let succeeded = 0;
    return Promise.all(
      training.map((client) => {
        const sentAt = performance.now();
        return client
          .fit(request, o.deadlineMs)
          .catch(
            (err): FitOutcome => ({
              ok: false,
              clientId: client.id,
              reason: "error",
              code: ErrorCode.INTERNAL,
              message: describeError(err),
            }),
          )
          .then((outcome) => {
            pending.delete(client);
            if (outcome.ok) succeeded++;
            o.onClientOutcome?.(round, outcome, sampledCount);
            if (outcome.ok && succeeded === target && training.length > target) {
              for (const slow of pending) slow.cancel?.(round, "over-selection: enough clients finished");
            }
            const timing: ClientTiming = {
              clientId: client.id,
              startSeconds: (sentAt - roundStart) / 1000,
              seconds: (performance.now() - sentAt) / 1000,
              ...(outcome.ok && outcome.metrics ? { trainSeconds: outcome.metrics.seconds } : {}),
              outcome: outcome.ok ? "ok" : outcome.reason,
            };
            return { outcome, timing };
          });
      }),
    );
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

function sumOf<T>(items: readonly T[], value: (item: T) => number): number {
  let total = 0;
  for (const item of items) total += value(item);
  return total;
}

/**
 * The mean of the clients' reported training losses, when every participant reported one. Under
 * DP or SecAgg none do (common/disclosure.ts), and the record has no trainLoss.
 */
function meanTrainLoss(successes: readonly FitSuccess[]): number | undefined {
  if (successes.length === 0 || successes.some((x) => x.metrics === undefined)) return undefined;
  return successes.reduce((s, x) => s + (x.metrics?.loss ?? 0), 0) / successes.length;
}

/** A success as a strategy sees it; only unprotected rounds have individual updates with their reports. */
export function toClientUpdate(s: FitSuccess): ClientUpdate {
  if (s.numExamples === undefined || s.metrics === undefined) {
    throw new FedsimError(
      ErrorCode.INTERNAL,
      `update from ${s.clientId} has no example count or metrics: a protected round must aggregate a sum`,
    );
  }
  return {
    clientId: s.clientId,
    numExamples: s.numExamples,
    delta: s.delta,
    metrics: {
      loss: s.metrics.loss,
      accuracy: s.metrics.accuracy,
      epochsCompleted: s.metrics.epochsCompleted,
    },
  };
}
