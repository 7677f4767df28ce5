import { describeError, ErrorCode, FedsimError } from "../common/errors.js";
import { createRng, type Rng, sampleWithoutReplacement } from "../common/rng.js";
import type { AsyncStrategy } from "../common/strategy/async-strategy.js";
import { type FlatWeights, mergeTensors, selectTensors } from "../common/weights.js";
import { type Flight, launchFlight } from "./async-flight.js";
import { type FlightView, nextEvent } from "./async-order.js";
import { type FinishedFit, VersionLog, type VersionRecord } from "./async-records.js";
import type { ClientDirectory, ClientProxy, FitOutcome } from "./client-proxy.js";
import type { EvaluationResult, RoundRecord } from "./round-record.js";
import { budgetReached, type VirtualClock } from "./virtual-round.js";

export interface AsyncLoopOptions {
  strategy: AsyncStrategy;
  directory: ClientDirectory;
  /** Full model weights; updated in place each time a version is published. */
  model: FlatWeights;
  trainable: ReadonlySet<string>;
  evaluate: (model: FlatWeights) => Promise<EvaluationResult>;
  /** Server versions to publish (each one is a "round" in the records). */
  rounds: number;
  /** Centralised evaluation every k versions (and always after the last). Default 1. */
  evaluateEvery?: number;
  /** Per-fit deadline (wall clock; on the virtual clock only a safety net for the real fit). */
  deadlineMs: number;
  /** Clients that must be connected before the first dispatch. */
  minAvailableClients: number;
  waitForClientsMs?: number;
  seed: number;
  /**
   * Run on the virtual clock: nobody sleeps, arrivals are taken in simulated-time order. The
   * clock's serverSeconds does not apply: clients keep training while the server aggregates.
   */
  virtualClock?: VirtualClock;
  /** Stop when this many fits in a row fail (default 100 + 10 × concurrency). */
  maxConsecutiveFailures?: number;
  /** Seal updates to a fresh key per fit (nacl.box envelopes). */
  envelope?: boolean;
  /**
   * Awaited before the first wait for clients and before every step, with the version being built
   * and the clients in flight: nothing is dispatched meanwhile, so the run may change who is
   * connected (remote pools move idle clients between hosts) but must leave those in flight be.
   */
  betweenSteps?: (version: number, training: () => ReadonlySet<string>) => Promise<void>;
  onRound?: (record: RoundRecord) => void | Promise<void>;
  /** Called as each fit's outcome is taken (progress bars); `version` is the one being built. */
  onClientOutcome?: (version: number, outcome: FitOutcome, concurrency: number) => void;
  log?: (line: string) => void;
}

/** A published version's trainable values (never written again) and the frozen tensors. */
interface Snapshot {
  version: number;
  weights: FlatWeights;
  frozen: FlatWeights | null;
}

const DEFAULT_IDLE_STEP_SECONDS = 60;
const DEFAULT_MAX_IDLE_SECONDS = 7 * 24 * 3600;
/** How often the real-clock loop looks for newly connected clients while a slot is free. */
const REAL_POLL_MS = 100;

/**
 * The asynchronous coordinator (FedBuff, FedAsync): keeps `strategy.concurrency` fits in flight,
 * hands each arriving update to the strategy with its staleness τ = current version − the version
 * it trained on, and publishes a version whenever the strategy says. Like the RoundLoop it sees
 * clients only through ClientDirectory/ClientProxy. On the real clock arrivals are taken in
 * wall-clock order; on the virtual clock in simulated-time order (server/async-order.ts).
 */
export class AsyncLoop {
  readonly records: VersionRecord[] = [];
  private readonly options: AsyncLoopOptions;
  private readonly rng: Rng;
  private readonly flights: Flight[] = [];
  private version = 0;
  private now: number;
  private snapshot: Snapshot | null = null;
  private log: VersionLog;
  private settledCount = 0;
  private wake: (() => void) | null = null;
  private stopped: string | null = null;
  private failuresInARow = 0;

  constructor(options: AsyncLoopOptions) {
    this.options = options;
    this.rng = createRng(options.seed);
    this.now = options.virtualClock?.startSeconds ?? 0;
    this.log = new VersionLog(options.virtualClock ? this.now : null);
    if (!Number.isInteger(options.rounds) || options.rounds < 0) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `rounds must be an integer ≥ 0, got ${options.rounds}`);
    }
    const every = options.evaluateEvery ?? 1;
    if (!Number.isInteger(every) || every < 1) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `evaluateEvery must be an integer ≥ 1, got ${every}`);
    }
    const clock = options.virtualClock;
    if (clock && !(clock.deadlineSeconds > 0)) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `deadlineSeconds must be > 0, got ${clock.deadlineSeconds}`,
      );
    }
  }

  get globalWeights(): FlatWeights {
    return this.options.model;
  }

  /** The latest published version (0 before the first). */
  get currentVersion(): number {
    return this.version;
  }

  /** The simulated clock's reading (virtual clock only). */
  get simulatedNow(): number | null {
    return this.options.virtualClock ? this.now : null;
  }

  get stopReason(): string | null {
    return this.stopped;
  }

  stop(reason: string): void {
    this.stopped = reason;
    this.wake?.();
  }

  /** Replacement clients always come from the run's seeded RNG (no DP here). */
  get samplingReproducible(): boolean {
    return true;
  }

  rngState(): number[] {
    return this.rng.state();
  }

  async evaluateCurrent(): Promise<EvaluationResult> {
    return this.options.evaluate(this.options.model);
  }

  async run(): Promise<RoundRecord[]> {
    const o = this.options;
    await this.betweenSteps();
    const enough = await o.directory.waitForClients(o.minAvailableClients, o.waitForClientsMs ?? 120_000);
    if (!enough)
      this.say(
        `only ${o.directory.connected().length} of ${o.minAvailableClients} clients connected; starting anyway`,
      );
    this.log = new VersionLog(o.virtualClock ? this.now : null);
    let idle = 0;
    while (this.version < o.rounds && this.stopped === null) {
      await this.betweenSteps();
      if (o.virtualClock) idle = await this.stepVirtual(o.virtualClock, idle);
      else await this.stepReal();
    }
    if (this.stopped) this.say(`stopping: ${this.stopped}`);
    await this.drain();
    return this.records;
  }

  private async betweenSteps(): Promise<void> {
    await this.options.betweenSteps?.(this.version + 1, () => new Set(this.flights.map((f) => f.client.id)));
  }

  /** Real clock: take replies as they come, keep the slots full, else wait. */
  private async stepReal(): Promise<void> {
    const ready = this.flights.filter((f) => f.settled !== null);
    if (ready.length > 0) {
      ready.sort((a, b) => (a.settled?.order ?? 0) - (b.settled?.order ?? 0));
      await this.take(ready[0]);
      return;
    }
    const free = this.flights.length < this.options.strategy.concurrency;
    const candidates = free ? this.candidates() : [];
    if (candidates.length > 0) {
      this.dispatch(this.pick(candidates));
      return;
    }
    if (this.flights.length === 0) {
      const connected = await this.options.directory.waitForClients(
        1,
        this.options.waitForClientsMs ?? 120_000,
      );
      if (!connected) this.stopped = "no client connected to train";
      else if (this.candidates().length === 0) await this.settleOrTimeout(REAL_POLL_MS);
      return;
    }
    await this.settleOrTimeout(free ? REAL_POLL_MS : null);
  }

  /**
   * Virtual clock: the conservative rule decides between the earliest arrival and a dispatch at
   * the current simulated time; while nobody is available the clock idles forward.
   */
  private async stepVirtual(clock: VirtualClock, idle: number): Promise<number> {
    const free = this.flights.length < this.options.strategy.concurrency;
    const candidates = free ? this.candidates() : [];
    const step = clock.idleStepSeconds ?? DEFAULT_IDLE_STEP_SECONDS;
    let dispatchAt = Number.POSITIVE_INFINITY;
    if (candidates.length > 0) dispatchAt = this.now;
    else if (free && this.idleClients().length > 0) dispatchAt = this.now + step;
    else if (this.flights.length === 0) {
      // Nobody connected at all: a wall-clock wait, not a simulated one.
      const connected = await this.options.directory.waitForClients(
        1,
        this.options.waitForClientsMs ?? 120_000,
      );
      if (!connected) this.stopped = "no client connected to train";
      return idle;
    }
    const views: FlightView[] = this.flights.map((f) => ({
      clientId: f.client.id,
      lowerBound: f.lowerBound,
      settledAt: f.settled?.at ?? null,
    }));
    const next = nextEvent(views, dispatchAt);
    if (next.kind === "wait") {
      await this.settleOrTimeout(null);
      return idle;
    }
    const budget = clock.budgetSeconds;
    if (budget !== undefined && next.at > budget) {
      this.stopped = budgetReached(budget);
      return idle;
    }
    if (next.kind === "arrival") {
      await this.take(this.flights[next.index]);
      return 0;
    }
    if (next.at > this.now) {
      // No idle client is available: let the simulated clock run until one is.
      this.now = next.at;
      const idled = (idle + 1) * step;
      if (idled > (clock.maxIdleSeconds ?? DEFAULT_MAX_IDLE_SECONDS)) {
        this.stopped = `no client became available for ${idled} simulated s`;
      }
      return idle + 1;
    }
    this.dispatch(this.pick(candidates));
    return 0;
  }

  /** Connected clients not training now, sorted by id so the seeded draw ignores connection order. */
  private idleClients(): ClientProxy[] {
    const busy = new Set(this.flights.map((f) => f.client.id));
    return this.options.directory
      .connected()
      .filter((c) => !busy.has(c.id))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** Idle clients that may be sampled now (on the virtual clock: available at the simulated time). */
  private candidates(): ClientProxy[] {
    const clock = this.options.virtualClock;
    const idle = this.idleClients();
    return clock ? idle.filter((c) => clock.timing.isAvailable(c.id, this.now)) : idle;
  }

  private pick(candidates: readonly ClientProxy[]): ClientProxy {
    return candidates[sampleWithoutReplacement(candidates.length, 1, this.rng)[0]];
  }

  /** The current version's trainable values and frozen tensors, copied once per version. */
  private current(): Snapshot {
    if (this.snapshot?.version === this.version) return this.snapshot;
    const o = this.options;
    const frozenNames = new Set(o.model.specs.map((s) => s.name).filter((n) => !o.trainable.has(n)));
    this.snapshot = {
      version: this.version,
      weights: selectTensors(o.model, o.trainable),
      frozen: frozenNames.size > 0 ? selectTensors(o.model, frozenNames) : null,
    };
    return this.snapshot;
  }

  private dispatch(client: ClientProxy): void {
    const o = this.options;
    const snap = this.current();
    const flight = launchFlight({
      client,
      version: this.version,
      weights: snap.weights,
      frozen: snap.frozen,
      config: o.strategy.fitConfig(this.version),
      deadlineMs: o.deadlineMs,
      ...(o.virtualClock ? { clock: o.virtualClock } : {}),
      now: this.now,
      envelope: o.envelope ?? false,
      onSettled: () => {
        this.wake?.();
        return this.settledCount++;
      },
    });
    this.flights.push(flight);
  }

  /** Takes one settled fit: its update goes to the strategy, which may publish a version. */
  private async take(flight: Flight): Promise<void> {
    const settled = flight.settled;
    if (!settled) throw new FedsimError(ErrorCode.INTERNAL, "take() of a fit still training");
    this.flights.splice(this.flights.indexOf(flight), 1);
    if (this.options.virtualClock) this.now = Math.max(this.now, settled.at);
    const { outcome } = settled;
    const fit: FinishedFit = {
      outcome,
      trainedOn: flight.version,
      wallSent: flight.wallSent,
      wallEnded: settled.wallEnded,
      ...(this.options.virtualClock ? { simulated: { sentAt: flight.sentAt, arrivedAt: settled.at } } : {}),
    };
    this.log.addFit(fit);
    this.options.onClientOutcome?.(this.version + 1, outcome, this.options.strategy.concurrency);
    if (!outcome.ok) {
      this.say(`${outcome.clientId} failed (${outcome.reason}, ${outcome.code}): ${outcome.message}`);
      this.countFailure();
      return;
    }
    this.failuresInARow = 0;
    const staleness = this.version - flight.version;
    const snap = this.current();
    // Always reported here: asynchronous runs are never protected rounds (no DP, no SecAgg).
    const numExamples = outcome.numExamples ?? 0;
    let step: ReturnType<AsyncStrategy["onUpdate"]>;
    try {
      step = this.options.strategy.onUpdate(snap.weights.values, {
        clientId: outcome.clientId,
        numExamples,
        delta: outcome.delta,
        base: flight.base,
        staleness,
      });
    } catch (err) {
      this.say(`update of ${outcome.clientId} refused by the strategy: ${describeError(err)}`);
      this.log.refuse(fit, describeError(err));
      this.countFailure();
      return;
    }
    this.log.addUpdate(fit, staleness, step.weight, numExamples);
    if (step.weights !== null) await this.publish(step.weights);
  }

  /** Without this, clients that can never succeed would keep the loop busy forever. */
  private countFailure(): void {
    this.failuresInARow++;
    const limit = this.options.maxConsecutiveFailures ?? 100 + 10 * this.options.strategy.concurrency;
    if (this.failuresInARow >= limit) this.stopped = `${this.failuresInARow} fits in a row failed`;
  }

  private async publish(values: Float32Array): Promise<void> {
    const o = this.options;
    const specs = this.current().weights.specs;
    if (values.length !== this.current().weights.values.length) {
      throw new FedsimError(ErrorCode.INTERNAL, "strategy returned weights of the wrong length");
    }
    mergeTensors(o.model, { specs, values });
    this.version++;
    const evaluation = await this.evaluateVersion(this.version);
    const record = this.log.finish(this.version, evaluation, o.virtualClock ? this.now : null);
    this.say(
      `version ${this.version}: ${record.participants} update(s), staleness mean ${record.staleness.mean.toFixed(2)} max ${record.staleness.max}`,
    );
    this.records.push(record);
    this.log = new VersionLog(o.virtualClock ? this.now : null);
    await o.onRound?.(record);
  }

  private async evaluateVersion(version: number): Promise<EvaluationResult & { skipped?: true }> {
    const o = this.options;
    const last = [...this.records].reverse().find((r) => r.evaluated !== false);
    if (version % (o.evaluateEvery ?? 1) !== 0 && version !== o.rounds && last) {
      return { accuracy: last.accuracy, loss: last.loss, skipped: true };
    }
    return o.evaluate(o.model);
  }

  /** Resolves when a fit settles (or stop() is called), or after `ms` when given. */
  private settleOrTimeout(ms: number | null): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = ms === null ? null : setTimeout(done, ms);
      const self = this;
      function done() {
        if (timer) clearTimeout(timer);
        if (self.wake === done) self.wake = null;
        resolve();
      }
      this.wake = done;
    });
  }

  /** The run is over: call off the fits still training and wait for them to end. */
  private async drain(): Promise<void> {
    for (const f of this.flights)
      if (!f.settled) f.client.cancel?.(f.version, "the asynchronous run is over");
    await Promise.all(this.flights.map((f) => f.done));
    this.flights.length = 0;
  }

  private say(line: string): void {
    this.options.log?.(`async: ${line}`);
  }
}
