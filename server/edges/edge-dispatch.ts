import { randomBytes } from "node:crypto";
import type { Server } from "socket.io";
import { bytesToVector } from "../../common/crypto/secagg/messages.js";
import { isProtectedRound } from "../../common/disclosure.js";
import {
  type EdgeFitPlan,
  type EdgeFitReply,
  type EdgeMode,
  type EdgeOutcome,
  type EdgeRoundWeights,
  type EdgeSealed,
  edgeFitReplySchema,
  type InterServerEvents,
} from "../../common/edge-protocol.js";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { safeParseUntrusted } from "../../common/protocol.js";
import { totalSize } from "../../common/weights.js";
import type { FitOutcome, FitRequest, MaskedInputHolder, SecAggStage } from "../client-proxy.js";
import { askEdges } from "./ask-edges.js";
import type { EdgeLinks } from "./edge-links.js";
import type { SealedInbox } from "./edge-sealed.js";
import { edgeWeightsOf, edgeFailure as failure, fitOutcomeFromEdge } from "./edge-wire.js";
import { ADAPTER_REQUEST_TIMEOUT_MS } from "./redis.js";

/** How long past its deadline a remote fit waits for its edge's word before it is a timeout. */
export const EDGE_GRACE_MS = 10_000;

interface PendingRemote {
  clientId: string;
  edgeId: string;
  resolve: (outcome: FitOutcome) => void;
  timer?: NodeJS.Timeout;
}

/** The round being dispatched: its plan's key, the request (its weights are served to edges), who is where. */
export interface DispatchedRound {
  round: number;
  key: string;
  mode: EdgeMode;
  request: FitRequest;
  edgeOf: Map<string, string>;
  /** Central DP: the norm every update was clipped to before it counts in a sum. */
  clipNorm?: number;
}

/** How the edges hand updates on this run (server/edges/scale-out.ts decides). */
export interface DispatchSettings {
  mode: EdgeMode;
  weighting: EdgeFitPlan["weighting"];
  /** Central DP: edges clip each update to the round's clip norm before summing. */
  clipAtEdge: boolean;
  /** Envelopes: where relayed sealed updates are opened; null when updates travel in the clear. */
  inbox: SealedInbox | null;
}

/**
 * Sends a round's fits to the clients the edges hold. The round loop calls `fit` once per sampled
 * client in one synchronous pass; the calls of that pass become one plan, sent to every edge at
 * once through the Redis adapter (serverSideEmit with acks). Each edge fetches the weights once
 * over its link, runs its clients, and reports each outcome over its link. Every way a remote fit
 * can fail is an outcome with a code: no edge took it (EDGE_UNREACHABLE), its edge went away
 * (EDGE_LOST), no word by the deadline (CLIENT_TIMEOUT).
 */
export class EdgeDispatch {
  private batch: { request: FitRequest; deadlineMs: number; entries: PendingRemote[] } | null = null;
  private readonly pending = new Map<string, PendingRemote>();
  private readonly holders = new Map<string, MaskedInputHolder>();
  current: DispatchedRound | null = null;

  constructor(
    private readonly io: Server<never, never, InterServerEvents, never>,
    private readonly links: EdgeLinks,
    private readonly settings: DispatchSettings,
    private readonly log: (line: string) => void,
  ) {}

  fit(clientId: string, edgeId: string, request: FitRequest, deadlineMs: number): Promise<FitOutcome> {
    return new Promise((resolve) => {
      const entry: PendingRemote = { clientId, edgeId, resolve };
      if (this.batch === null || this.batch.request !== request) {
        this.batch = { request, deadlineMs, entries: [] };
        queueMicrotask(() => void this.dispatch());
      }
      this.batch.entries.push(entry);
    });
  }

  cancel(clientId: string, round: number, reason: string): void {
    const entry = this.pending.get(clientId);
    const current = this.current;
    if (!entry || !current || current.round !== round) return;
    this.links.cancel(entry.edgeId, { round, key: current.key, clientId, reason });
    this.finish(entry, failure(clientId, "cancelled", ErrorCode.CANCELLED, reason));
  }

  weightsFor(round: number, key: string): EdgeRoundWeights | null {
    const current = this.current;
    if (!current || current.round !== round || current.key !== key) return null;
    return edgeWeightsOf(current.request);
  }

  /** A sealed update an edge relayed: opened and checked here; rejects with the code to refuse it with. */
  async onSealed(edgeId: string, sealed: EdgeSealed): Promise<void> {
    const current = this.current;
    const entry = this.pending.get(sealed.clientId);
    const inbox = this.settings.inbox;
    if (!inbox) throw new FedsimError(ErrorCode.BAD_PAYLOAD, "this run's updates are not sealed");
    if (!current || sealed.key !== current.key || !entry || entry.edgeId !== edgeId) {
      throw new FedsimError(
        ErrorCode.STALE_ROUND,
        `no fit of round ${sealed.round} is pending for ${sealed.clientId}`,
      );
    }
    await inbox.open(sealed, current.request);
  }

  onOutcome(edgeId: string, outcome: EdgeOutcome): void {
    const current = this.current;
    const entry = this.pending.get(outcome.clientId);
    if (!current || outcome.key !== current.key || !entry || entry.edgeId !== edgeId) return;
    if (!outcome.ok) {
      this.finish(entry, fitOutcomeFromEdge(edgeId, outcome, null));
      return;
    }
    // The edge applied common/disclosure.ts already; an edge that did not is refused all the same.
    if (isProtectedRound(current.request) && (outcome.numExamples !== undefined || outcome.metrics)) {
      const message = `edge ${edgeId} passed on a report that this protected round forbids`;
      this.finish(entry, failure(outcome.clientId, "rejected", ErrorCode.PRIVACY_VIOLATION, message));
      return;
    }
    if (this.settings.inbox) {
      const opened = this.settings.inbox.take(current.key, outcome.clientId);
      const message = `edge ${edgeId} reported an update the coordinator did not open`;
      const result = opened ?? failure(outcome.clientId, "rejected", ErrorCode.BAD_PAYLOAD, message);
      this.finish(entry, { ...result, bytes: outcome.bytes });
      return;
    }
    const forwarded = this.settings.mode === "forward" ? totalSize(current.request.weights.specs) : null;
    this.finish(entry, fitOutcomeFromEdge(edgeId, outcome, forwarded));
  }

  /**
   * The holder of an edge's masked inputs (secure aggregation): asked for the masked sum of the
   * round being dispatched over exactly the clients the coordinator names, once per edge.
   */
  maskedHolder(edgeId: string): MaskedInputHolder {
    let holder = this.holders.get(edgeId);
    if (!holder) {
      holder = {
        id: edgeId,
        maskedSum: async (round, clientIds, timeoutMs) => {
          const current = this.current;
          if (!current || current.round !== round) {
            throw new FedsimError(ErrorCode.STALE_ROUND, `round ${round} is not the round being dispatched`);
          }
          const part = await this.links.requestMaskedSum(
            edgeId,
            { round, key: current.key, clientIds: [...clientIds] },
            timeoutMs,
          );
          // n trainable values and the weight, as each client's masked input (fit-validation.ts).
          const words = totalSize(current.request.weights.specs) + 1;
          if (part.count !== clientIds.length || part.masked.byteLength !== words * 4) {
            throw new FedsimError(
              ErrorCode.BAD_AGGREGATE,
              `edge ${edgeId} sent a masked sum of ${part.count} inputs in ${part.masked.byteLength} bytes; ${clientIds.length} of ${words} words were asked for`,
            );
          }
          return bytesToVector(part.masked);
        },
      };
      this.holders.set(edgeId, holder);
    }
    return holder;
  }

  /** One SecAgg stage for a client an edge holds, over that edge's link. */
  secagg(clientId: string, edgeId: string, stage: SecAggStage, payload: unknown, timeoutMs: number) {
    return this.links.secaggStage(edgeId, { clientId, stage, payload, timeoutMs });
  }

  /** The edge's link closed: its clients' fits of this round are lost. */
  onLinkClosed(edgeId: string): void {
    for (const entry of [...this.pending.values()]) {
      if (entry.edgeId === edgeId) {
        this.finish(
          entry,
          failure(
            entry.clientId,
            "disconnect",
            ErrorCode.EDGE_LOST,
            `edge ${edgeId} went away during the round`,
          ),
        );
      }
    }
  }

  private async dispatch(): Promise<void> {
    const batch = this.batch;
    this.batch = null;
    if (!batch) return;
    const { request, deadlineMs, entries } = batch;
    // A new round supersedes whatever of the last one is still pending.
    for (const entry of [...this.pending.values()]) {
      this.finish(entry, failure(entry.clientId, "error", ErrorCode.INTERNAL, "superseded by a new round"));
    }
    const key = randomBytes(12).toString("hex");
    const edgeOf = new Map(entries.map((e) => [e.clientId, e.edgeId]));
    const { mode, weighting, clipAtEdge, inbox } = this.settings;
    // Forwarded updates (sealed ones too) reach the DP plugin one by one, which clips them itself.
    const clipNorm = clipAtEdge && mode === "sum" ? request.dp?.clipNorm : undefined;
    this.current = {
      round: request.round,
      key,
      mode,
      request,
      edgeOf,
      ...(clipNorm !== undefined ? { clipNorm } : {}),
    };
    inbox?.begin(key);
    const assignments: Record<string, string[]> = {};
    for (const entry of entries) {
      this.pending.set(entry.clientId, entry);
      entry.timer = setTimeout(
        () =>
          this.finish(
            entry,
            failure(
              entry.clientId,
              "timeout",
              ErrorCode.CLIENT_TIMEOUT,
              `no word from edge ${entry.edgeId} within ${deadlineMs} ms`,
            ),
          ),
        deadlineMs + EDGE_GRACE_MS,
      );
      const list = assignments[entry.edgeId] ?? [];
      list.push(entry.clientId);
      assignments[entry.edgeId] = list;
    }
    const plan: EdgeFitPlan = {
      round: request.round,
      key,
      deadlineMs,
      config: request.config,
      mode,
      weighting,
      assignments,
      ...(request.secagg ? { secagg: request.secagg } : {}),
      ...(request.dp ? { dp: request.dp } : {}),
      ...(clipNorm !== undefined ? { clipNorm } : {}),
      ...(request.envelope ? { envelopeKey: Buffer.from(request.envelope.publicKey).toString("hex") } : {}),
    };
    const { replies, error } = await this.broadcastPlan(plan);
    replies.push(...(await this.resendToSilentEdges(plan, replies)));
    const started = new Set<string>();
    for (const reply of replies) for (const id of reply.started) started.add(id);
    for (const entry of entries) {
      if (started.has(entry.clientId) || !this.pending.has(entry.clientId)) continue;
      const why = error ?? `edge ${entry.edgeId} does not hold it any more`;
      this.finish(
        entry,
        failure(entry.clientId, "disconnect", ErrorCode.EDGE_UNREACHABLE, `no edge took the request: ${why}`),
      );
    }
  }

  /** The plan to every edge through the adapter; the answers that came, and why others did not. */
  private async broadcastPlan(plan: EdgeFitPlan): Promise<{ replies: EdgeFitReply[]; error?: string }> {
    const { replies, error } = await askEdges((ack) => this.io.serverSideEmit("edgeFit", plan, ack));
    const valid: EdgeFitReply[] = [];
    for (const raw of replies) {
      const parsed = safeParseUntrusted(edgeFitReplySchema, raw);
      if (parsed.success) valid.push(parsed.data);
    }
    if (error) this.log(`round ${plan.round}: edges: plan not acknowledged by all: ${error}`);
    return { replies: valid, ...(error ? { error } : {}) };
  }

  /**
   * Redis may lose a message while the edges are fine (an outage, or on a cluster a subscriber
   * moving off a failed node, which the adapter does not count as a missing server): a linked
   * edge with clients in the plan that did not answer gets the plan on its link.
   */
  private async resendToSilentEdges(plan: EdgeFitPlan, replies: EdgeFitReply[]): Promise<EdgeFitReply[]> {
    const answered = new Set(replies.map((r) => r.edgeId));
    const silent = Object.keys(plan.assignments).filter((e) => !answered.has(e) && this.links.has(e));
    if (silent.length === 0) return [];
    this.log(
      `round ${plan.round}: edges: no answer through Redis from ${silent.join(", ")}; sending the plan on their links`,
    );
    const more = await Promise.all(
      silent.map((edgeId) => this.links.resendPlan(edgeId, plan, ADAPTER_REQUEST_TIMEOUT_MS)),
    );
    return more.filter((r) => r !== null);
  }

  private finish(entry: PendingRemote, outcome: FitOutcome): void {
    if (this.pending.get(entry.clientId) !== entry) return;
    this.pending.delete(entry.clientId);
    clearTimeout(entry.timer);
    entry.resolve(outcome);
  }
}
