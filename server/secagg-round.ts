import {
  advertiseKeysSchema,
  chooseEncoding,
  completeGraph,
  defaultThreshold,
  dequantizeSum,
  parseMessage,
  SecAggServerSession,
  secAggPlusGraph,
  shareKeysSchema,
  unmaskResponseSchema,
} from "../common/crypto/secagg/index.js";
import { describeError, ErrorCode, FedsimError } from "../common/errors.js";
import { deriveSeed } from "../common/rng.js";
import { fromWire, toWire, wireJsonBytes } from "../common/wire-json.js";
import type {
  ClientProxy,
  FitFailure,
  FitRequest,
  FitSuccess,
  MaskedInputHolder,
  SecAggStage,
} from "./client-proxy.js";
import type { PluginTime } from "./round-plugin.js";
import { bySimulatedArrival, placeExchange } from "./virtual-exchange.js";

export interface SecAggSettings {
  graph: "complete" | "secagg+";
  threshold?: number;
  clipRange: number;
  /** Weight by example count (plain FedAvg) or count every client once (DP-FedAvg). */
  weighted: boolean;
  /** Example counts above this are capped, so the fixed-point range is known in advance (unused when unweighted). */
  maxWeight: number;
  /** The wall-clock limit of each stage (on the virtual clock only a safety net). */
  stageTimeoutMs: number;
  seed: number;
}

/** One client's side of a stage: its reply or failure, the real bytes each way. */
interface Exchanged {
  id: string;
  reply?: unknown;
  failure?: FitFailure;
  /** The wall-clock safety net fired before the client answered. */
  wallTimeout?: boolean;
  bytesDown: number;
  bytesUp: number;
}

export interface SecAggSum {
  /** Σ wₖ·clip(Δₖ) over the survivors. */
  weightedDeltaSum: Float32Array;
  /** Σ wₖ over the survivors. */
  totalWeight: number;
  survivors: string[];
}

/**
 * Drives one round of secure aggregation over ClientProxy.secagg: the key stages before
 * training, then unmasking after the masked inputs arrived with the fit results. The
 * coordinator only ever holds the running sum of masked vectors.
 */
export class SecAggRound {
  private session: SecAggServerSession | null = null;
  private clients = new Map<string, ClientProxy>();
  private scale = 1;
  /** Virtual clock: when each client's last reply of this round arrived, in simulated seconds. */
  private lastArrival = new Map<string, number>();

  constructor(
    private readonly settings: SecAggSettings,
    private readonly log: (line: string) => void,
  ) {}

  /**
   * Advertise and share keys among the sampled clients; returns the fit config and failures. On
   * the virtual clock (`time`) the stages run one after the other in simulated time from its start.
   */
  async setup(
    round: number,
    sampled: readonly ClientProxy[],
    time?: PluginTime,
  ): Promise<{ config: NonNullable<FitRequest["secagg"]>; excluded: FitFailure[] }> {
    this.close();
    const s = this.settings;
    const ids = sampled.map((c) => c.id);
    if (ids.length < 2)
      throw new FedsimError(ErrorCode.SECAGG_THRESHOLD, "secure aggregation needs at least 2 clients");
    this.clients = new Map(sampled.map((c) => [c.id, c]));
    this.lastArrival = new Map();
    const graph =
      s.graph === "complete"
        ? completeGraph(ids)
        : secAggPlusGraph(ids, { seed: deriveSeed(s.seed, "secagg-graph", round) });
    const minDegree = Math.min(...Object.values(graph).map((n) => n.length));
    const threshold = s.threshold ?? defaultThreshold(minDegree);
    const session = new SecAggServerSession({ round, clientIds: ids, graph, threshold });
    this.session = session;
    const excluded: FitFailure[] = [];

    const advertised = await this.stage("advertise", ids, () => ({ round }), excluded, time);
    for (const [id, reply] of advertised)
      this.receive(excluded, id, () =>
        session.receiveAdvertiseKeys(id, parseMessage(advertiseKeysSchema, reply, "advertiseKeys")),
      );
    const neighbourKeys = session.neighbourKeys();
    const shareIds = Object.keys(neighbourKeys);
    const shared = await this.stage("share", shareIds, (id) => neighbourKeys[id], excluded, time);
    for (const [id, reply] of shared)
      this.receive(excluded, id, () =>
        session.receiveShareKeys(id, parseMessage(shareKeysSchema, reply, "shareKeys")),
      );
    const routed = session.routeShares();
    await this.stage("routed", Object.keys(routed), (id) => routed[id], excluded, time);

    // The sum of up to |U| clients' vectors must never wrap mod 2^32; the range is the weights' real one.
    const encoding = chooseEncoding(s, ids.length);
    this.scale = encoding.scale;
    this.log(
      `secagg: round ${round}: ${ids.length - excluded.length} of ${ids.length} clients shared keys (t=${threshold})`,
    );
    return { config: encoding, excluded };
  }

  /**
   * Feeds the masked inputs, runs the unmasking stage, and returns the dequantised sum. On the
   * virtual clock a survivor may drop out between its masked input (its fit's arrival) and its
   * unmasking reply: its reply is then lost, and the others' shares recover its masks.
   */
  async collect(successes: readonly FitSuccess[], time?: PluginTime): Promise<SecAggSum> {
    const session = this.session;
    if (!session)
      throw new FedsimError(ErrorCode.SECAGG_PROTOCOL, "no secure aggregation session for this round");
    for (const s of successes) {
      if (!s.masked) continue;
      try {
        session.receiveMaskedInput(s.clientId, s.masked);
      } catch (err) {
        this.log(`secagg: masked input from ${s.clientId} refused: ${describeError(err)}`);
      }
    }
    await this.collectHeldSums(session, successes);
    const requests = session.unmaskRequests();
    const ignored: FitFailure[] = [];
    for (const [id, at] of time?.arrivals ?? []) this.lastArrival.set(id, at);
    const responses = await this.stage("unmask", Object.keys(requests), (id) => requests[id], ignored, time);
    for (const f of ignored) this.log(`secagg: no unmasking from ${f.clientId} (${f.code}): ${f.message}`);
    for (const [id, reply] of responses) {
      this.receive(ignored, id, () =>
        session.receiveUnmaskResponse(id, parseMessage(unmaskResponseSchema, reply, "unmaskResponse")),
      );
    }
    const sum = await session.unmask();
    const values = dequantizeSum(sum, this.scale);
    const n = values.length - 1;
    if (this.settings.weighted)
      assertTotalWeightPlausible(values[n], session.survivors.length, this.settings.maxWeight);
    return { weightedDeltaSum: values.slice(0, n), totalWeight: values[n], survivors: session.survivors };
  }

  /**
   * Masked inputs that stayed where they arrived (an edge's clients): one masked sum per holder
   * over exactly the successes it holds. A holder that cannot answer loses its clients' inputs,
   * which then unmask as dropouts, as if they had never sent them.
   */
  private async collectHeldSums(
    session: SecAggServerSession,
    successes: readonly FitSuccess[],
  ): Promise<void> {
    const byHolder = new Map<MaskedInputHolder, string[]>();
    for (const s of successes) {
      const holder = s.masked ? undefined : this.clients.get(s.clientId)?.maskedHolder;
      if (!holder) continue;
      const ids = byHolder.get(holder);
      if (ids) ids.push(s.clientId);
      else byHolder.set(holder, [s.clientId]);
    }
    await Promise.all(
      [...byHolder].map(async ([holder, ids]) => {
        try {
          const summed = await holder.maskedSum(session.round, ids, this.settings.stageTimeoutMs);
          session.receiveMaskedSum(ids, summed);
          this.log(
            `secagg: round ${session.round}: one masked sum of ${ids.length} inputs from ${holder.id}`,
          );
        } catch (err) {
          this.log(
            `secagg: masked sum of ${ids.length} inputs from ${holder.id} refused: ${describeError(err)}`,
          );
        }
      }),
    );
  }

  close(): void {
    this.session?.close();
    this.session = null;
  }

  private receive(failures: FitFailure[], id: string, accept: () => void): void {
    try {
      accept();
    } catch (err) {
      this.log(`secagg: message from ${id} refused: ${describeError(err)}`);
      failures.push({
        ok: false,
        clientId: id,
        reason: "rejected",
        code: codeOf(err),
        message: describeError(err),
      });
    }
  }

  /**
   * Sends one stage's message to each client and gathers the replies that arrive in time. On the
   * virtual clock each exchange is placed in simulated time from the real message sizes: a client
   * that dropped out since its last message, or would answer after the stage's deadline, fails the
   * stage, and its reply is not used.
   */
  private async stage(
    stage: SecAggStage,
    ids: string[],
    payload: (id: string) => unknown,
    failures: FitFailure[],
    time?: PluginTime,
  ): Promise<Map<string, unknown>> {
    const exchanged = (await Promise.all(ids.map((id) => this.exchange(stage, id, payload(id))))).filter(
      (x) => x !== null,
    );
    const replies = new Map<string, unknown>();
    if (!time) {
      for (const x of exchanged) {
        if (x.failure) failures.push(x.failure);
        else replies.set(x.id, x.reply);
      }
      return replies;
    }
    const start = time.end;
    const deadlineAt = start + time.clock.deadlineSeconds;
    const placed = exchanged.map((x) => {
      const simulated = placeExchange(
        time.clock,
        {
          clientId: x.id,
          sentAt: start,
          bytesDown: x.bytesDown,
          bytesUp: x.bytesUp,
          evaluatedExamples: 0,
          engagedSince: Math.min(start, this.lastArrival.get(x.id) ?? start),
        },
        deadlineAt,
        `secagg ${stage}`,
      );
      return { ...x, clientId: x.id, simulated, at: x.wallTimeout ? deadlineAt : simulated.at };
    });
    placed.sort(bySimulatedArrival);
    for (const x of placed) {
      const { simulated } = x;
      if (x.wallTimeout) {
        // The simulated coordinator waited for this reply until the stage's deadline.
        const message = `secagg ${stage}: no reply within the wall-clock safety net`;
        failures.push({
          ok: false,
          clientId: x.id,
          reason: "timeout",
          code: ErrorCode.CLIENT_TIMEOUT,
          message,
        });
      } else if (!simulated.ok) {
        const { reason, code, message } = simulated;
        failures.push({ ok: false, clientId: x.id, reason, code, message });
      } else if (x.failure) {
        failures.push(x.failure);
      } else {
        replies.set(x.id, x.reply);
        this.lastArrival.set(x.id, x.at);
      }
    }
    time.end = placed.reduce((end, x) => Math.max(end, x.at), start);
    time.stages[stage] = time.end - start;
    return replies;
  }

  /** One client's stage message and its reply (or failure), with the bytes the socket carried. */
  private async exchange(stage: SecAggStage, id: string, payload: unknown): Promise<Exchanged | null> {
    const client = this.clients.get(id);
    if (!client?.secagg) return null;
    const wire = toWire(payload);
    const bytesDown = wireJsonBytes(wire);
    let bytesUp = 0;
    try {
      const raw = await client.secagg(stage, wire, this.settings.stageTimeoutMs);
      bytesUp = wireJsonBytes(raw);
      const reply = fromWire(raw) as
        | { ok: true; message?: unknown }
        | { ok: false; code: string; message: string };
      if (!reply || typeof reply !== "object" || !("ok" in reply))
        throw new FedsimError(ErrorCode.BAD_PAYLOAD, "malformed secagg reply");
      if (!reply.ok) throw new FedsimError(ErrorCode.SECAGG_PROTOCOL, `${reply.code}: ${reply.message}`);
      return { id, reply: reply.message, bytesDown, bytesUp };
    } catch (err) {
      const wallTimeout = err instanceof Error && /timed out/i.test(err.message);
      const disconnected = wallTimeout || (err instanceof Error && /not connected/i.test(err.message));
      const failure: FitFailure = {
        ok: false,
        clientId: id,
        reason: disconnected ? "disconnect" : "error",
        code: codeOf(err),
        message: `secagg ${stage}: ${describeError(err)}`,
      };
      return { id, failure, wallTimeout, bytesDown, bytesUp };
    }
  }
}

/**
 * Each honest client's weight is its example count capped to [1, maxWeight], so the unmasked total
 * of n survivors lies in [n, n·maxWeight] (up to quantisation rounding, well under ½ per client).
 * Anything else means some client encoded a weight of its own choosing, e.g. a negative one that
 * cancels the others' and makes the mean's divisor tiny, zero or negative: the round is refused.
 */
export function assertTotalWeightPlausible(total: number, survivors: number, maxWeight: number): void {
  const slack = 0.5;
  if (!(total >= survivors - slack && total <= survivors * maxWeight + slack)) {
    throw new FedsimError(
      ErrorCode.BAD_AGGREGATE,
      `secagg: the unmasked total weight ${total} is outside [${survivors}, ${survivors * maxWeight}] for ${survivors} survivor(s) with maxWeight ${maxWeight}`,
    );
  }
}

function codeOf(err: unknown): string {
  return err instanceof FedsimError ? err.code : ErrorCode.SECAGG_PROTOCOL;
}
