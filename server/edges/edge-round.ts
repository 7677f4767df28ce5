import { bytesToVector } from "../../common/crypto/secagg/messages.js";
import { clipToNorm } from "../../common/dp/clip.js";
import type { EdgeFitPlan, EdgeOutcome } from "../../common/edge-protocol.js";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { maskedSum, type PartialSum, partialSum } from "../../common/strategy/partial-sum.js";
import { float32BytesView } from "../../common/weights.js";
import type { ClientProxy, FitOutcome, FitRequest } from "../client-proxy.js";

/**
 * One round at an edge: the fits of the clients the plan assigned to it, through the same
 * `SocketClientProxy` validation a coordinator applies, each outcome reported over the link as
 * it comes. In "sum" mode an accepted update stays here until the coordinator asks for the
 * partial sum over the clients it accepted (clipped first under central DP); in "forward" mode
 * it travels with its outcome. Under secure aggregation the edge keeps each masked input for one
 * masked sum (mod 2^32) instead. Sealed updates (envelopes) went to the coordinator unopened.
 */
export class EdgeRound {
  /** Accepted updates kept for the sum: the delta and its weight. */
  private readonly held = new Map<string, { delta: Float32Array; weight: number }>();
  /** Under secure aggregation: accepted masked inputs, kept for the masked sum. */
  private readonly heldMasked = new Map<string, Uint32Array>();
  private readonly running = new Map<string, ClientProxy>();
  /** Central DP: the held updates this edge clipped. */
  private readonly clipped = new Set<string>();

  constructor(
    readonly plan: EdgeFitPlan,
    private readonly request: FitRequest,
    private readonly send: (outcome: EdgeOutcome) => void,
  ) {}

  get round(): number {
    return this.plan.round;
  }

  get key(): string {
    return this.plan.key;
  }

  start(clients: readonly ClientProxy[]): void {
    for (const client of clients) {
      this.running.set(client.id, client);
      void client
        .fit(this.request, this.plan.deadlineMs)
        .catch(
          (err): FitOutcome => ({
            ok: false,
            clientId: client.id,
            reason: "error",
            code: ErrorCode.INTERNAL,
            message: String(err),
          }),
        )
        .then((outcome) => {
          this.running.delete(client.id);
          this.send(this.report(outcome));
        });
    }
  }

  cancel(clientId: string, reason: string): void {
    this.running.get(clientId)?.cancel?.(this.plan.round, reason);
    this.held.delete(clientId);
    this.heldMasked.delete(clientId);
  }

  /**
   * The partial sum over exactly these clients; each must be an update this edge accepted. Under
   * central DP, also how many of them were clipped.
   */
  sum(clientIds: readonly string[]): PartialSum & { clipped?: number } {
    const vectors: Float32Array[] = [];
    const weights: number[] = [];
    for (const id of clientIds) {
      const update = this.held.get(id);
      if (!update)
        throw new FedsimError(ErrorCode.UNKNOWN_CLIENT, `no accepted update from ${id} at this edge`);
      vectors.push(update.delta);
      weights.push(update.weight);
    }
    const part = partialSum(vectors, weights);
    if (this.plan.clipNorm === undefined) return part;
    return { ...part, clipped: clientIds.filter((id) => this.clipped.has(id)).length };
  }

  /**
   * Σ masked vectors mod 2^32 over exactly these clients, each a masked input this edge accepted.
   * Masks cancel in any grouping, so the coordinator unmasks this sum as it would the vectors.
   */
  maskedSum(clientIds: readonly string[]): Uint32Array {
    const vectors = clientIds.map((id) => {
      const masked = this.heldMasked.get(id);
      if (!masked)
        throw new FedsimError(ErrorCode.UNKNOWN_CLIENT, `no accepted masked input from ${id} at this edge`);
      return masked;
    });
    if (new Set(clientIds).size !== clientIds.length)
      throw new FedsimError(ErrorCode.DUPLICATE, "a masked sum names a client twice");
    return maskedSum(vectors);
  }

  /** Stops the fits still running (a newer round began); their clients' pending requests fail at once. */
  abandon(reason: string): void {
    for (const client of this.running.values()) client.cancel?.(this.plan.round, reason);
    this.running.clear();
    this.held.clear();
    this.heldMasked.clear();
  }

  private report(outcome: FitOutcome): EdgeOutcome {
    const base = { round: this.plan.round, key: this.plan.key, clientId: outcome.clientId };
    if (!outcome.ok) {
      return {
        ...base,
        ok: false,
        reason: outcome.reason,
        code: outcome.code,
        message: outcome.message.slice(0, 2000),
        ...(outcome.bytes ? { bytes: outcome.bytes } : {}),
      };
    }
    const bytes = outcome.bytes ?? { sent: 0, received: 0 };
    const reports = {
      ...(outcome.numExamples !== undefined ? { numExamples: outcome.numExamples } : {}),
      ...(outcome.metrics ? { metrics: outcome.metrics } : {}),
      ...(outcome.clippedBit !== undefined ? { clippedBit: outcome.clippedBit } : {}),
    };
    if (outcome.masked) {
      // Secure aggregation: the masked vector waits here for the masked sum; only the word travels.
      this.heldMasked.set(outcome.clientId, bytesToVector(outcome.masked.masked));
      return { ...base, ok: true, ...reports, bytes };
    }
    // Sealed: the coordinator opened the update when the edge relayed it; here there is nothing.
    if (this.plan.envelopeKey !== undefined) return { ...base, ok: true, ...reports, bytes };
    if (this.plan.mode === "forward") {
      return { ...base, ok: true, ...reports, delta: float32BytesView(outcome.delta), bytes };
    }
    const weight = this.plan.weighting === "uniform" ? 1 : (outcome.numExamples ?? 0);
    // Central DP: the sum the coordinator noises must move by at most S per client, whatever a
    // client sent. The delta is this message's own buffer, read by nothing else.
    if (this.plan.clipNorm !== undefined && clipToNorm(outcome.delta, this.plan.clipNorm).clipped) {
      this.clipped.add(outcome.clientId);
    }
    this.held.set(outcome.clientId, { delta: outcome.delta, weight });
    return { ...base, ok: true, ...reports, bytes };
  }
}
