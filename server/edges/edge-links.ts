import { timingSafeEqual } from "node:crypto";
import type { Namespace, Server, Socket } from "socket.io";
import { z } from "zod";
import {
  type CoordinatorToEdgeEvents,
  EDGE_NAMESPACE,
  type EdgeAsyncFit,
  type EdgeCancel,
  type EdgeFitPlan,
  type EdgeFitReply,
  type EdgeMaskedSum,
  type EdgeOutcome,
  type EdgeRoundWeights,
  type EdgeSealed,
  type EdgeSecAggStage,
  type EdgeSumRequest,
  type EdgeToCoordinatorEvents,
  type EdgeWelcome,
  edgeAsyncFitReplySchema,
  edgeFitReplySchema,
  edgeHelloSchema,
  edgeMaskedSumSchema,
  edgeOutcomeSchema,
  edgePartialSumSchema,
  edgeSealedSchema,
  edgeSecAggReplySchema,
  edgeWeightsRequestSchema,
} from "../../common/edge-protocol.js";
import { describeError, ErrorCode, FedsimError } from "../../common/errors.js";
import { type Ack, formatZodIssues, safeParseUntrusted } from "../../common/protocol.js";
import type { PartialSum } from "../../common/strategy/partial-sum.js";
import { bytesToFloat32 } from "../../common/weights.js";
import { isLoopbackAddress } from "../observe/access.js";

type LinkSocket = Socket<EdgeToCoordinatorEvents, CoordinatorToEdgeEvents>;

/** How much longer than its client's stage timeout the coordinator waits for an edge's answer. */
const STAGE_GRACE_MS = 5_000;

const refusalSchema = z.object({
  ok: z.literal(false),
  code: z.string().max(64),
  message: z.string().max(4000),
});

/** Codes an edge may pass on about its own client in a SecAgg stage; anything else is EDGE_LOST. */
const clientCodes = new Set<string>([
  ErrorCode.CLIENT_TIMEOUT,
  ErrorCode.CLIENT_DISCONNECTED,
  ErrorCode.UNKNOWN_CLIENT,
  ErrorCode.STALE_ROUND,
  ErrorCode.SECAGG_PROTOCOL,
  ErrorCode.BAD_PAYLOAD,
]);

export interface EdgeLinksOptions {
  /** What every edge must present; without one, only edges on loopback may link. */
  token?: string;
  welcome: EdgeWelcome;
  /** The round's weights for an edge that was sent its plan, or null for an unknown round. */
  weightsFor: (round: number, key: string) => EdgeRoundWeights | null;
  onOutcome: (edgeId: string, outcome: EdgeOutcome) => void;
  /** A relayed sealed update: resolves once accepted, rejects with the code to refuse it with. */
  onSealed: (edgeId: string, sealed: EdgeSealed) => Promise<void>;
  /** An edge's link closed (process gone, network cut) or was replaced. */
  onLinkClosed: (edgeId: string) => void;
  onLinked: (edgeId: string) => void;
  log: (line: string) => void;
}

/**
 * The coordinator's end of the direct links from its edges (the `/edge` namespace on its own
 * server): admission by token, the round's weights on request, outcomes in, partial sums on
 * request. Counts every byte the links bring in, for the ingress comparison in the bench.
 */
export class EdgeLinks {
  private readonly links = new Map<string, LinkSocket>();
  private readonly namespace: Namespace<EdgeToCoordinatorEvents, CoordinatorToEdgeEvents>;
  /** Bytes received over all edge links since the coordinator started (engine packets, attachments included). */
  bytesReceived = 0;
  /** Weights answered to edges: once per edge per round, or per model version under an asynchronous strategy. */
  weightsServed = 0;

  constructor(
    // biome-ignore lint/suspicious/noExplicitAny: the main namespace's event maps do not apply here
    io: Server<any, any, any, any>,
    private readonly options: EdgeLinksOptions,
  ) {
    this.namespace = io.of(EDGE_NAMESPACE) as unknown as Namespace<
      EdgeToCoordinatorEvents,
      CoordinatorToEdgeEvents
    >;
    this.namespace.on("connection", (socket) => this.onConnection(socket));
  }

  ids(): string[] {
    return [...this.links.keys()];
  }

  has(edgeId: string): boolean {
    return this.links.has(edgeId);
  }

  /** Asks an edge for its partial sum over exactly `request.clientIds`. */
  async requestSum(
    edgeId: string,
    request: EdgeSumRequest,
    timeoutMs: number,
  ): Promise<PartialSum & { clipped?: number }> {
    const part = await this.ask(edgeId, "partial sum", edgePartialSumSchema, timeoutMs, (link) =>
      link.timeout(timeoutMs).emitWithAck("edgeSum", request),
    );
    return {
      sum: bytesToFloat32(part.sum),
      totalWeight: part.totalWeight,
      count: part.count,
      ...(part.clipped !== undefined ? { clipped: part.clipped } : {}),
    };
  }

  /** Under secure aggregation: an edge's Σ masked vectors mod 2^32 over exactly `request.clientIds`. */
  async requestMaskedSum(edgeId: string, request: EdgeSumRequest, timeoutMs: number): Promise<EdgeMaskedSum> {
    return this.ask(edgeId, "masked sum", edgeMaskedSumSchema, timeoutMs, (link) =>
      link.timeout(timeoutMs).emitWithAck("edgeMaskedSum", request),
    );
  }

  /**
   * One SecAgg stage for a client the edge holds: the client's wire reply. The edge waits for its
   * client `request.timeoutMs`, and the link a little longer, so a slow client is the edge's
   * answer (CLIENT_TIMEOUT), not a lost edge.
   */
  async secaggStage(edgeId: string, request: EdgeSecAggStage): Promise<unknown> {
    const timeoutMs = request.timeoutMs + STAGE_GRACE_MS;
    const answer = await this.ask(
      edgeId,
      `secagg ${request.stage}`,
      edgeSecAggReplySchema,
      timeoutMs,
      (link) => link.timeout(timeoutMs).emitWithAck("edgeSecAgg", request),
      true,
    );
    return answer.reply;
  }

  /** Sends a request over an edge's link; its answer checked with `schema`, or a FedsimError. */
  private async ask<T>(
    edgeId: string,
    what: string,
    schema: z.ZodType<T>,
    timeoutMs: number,
    emit: (link: LinkSocket) => Promise<unknown>,
    passClientCodes = false,
  ): Promise<T> {
    const link = this.links.get(edgeId);
    if (!link) throw new FedsimError(ErrorCode.EDGE_LOST, `edge ${edgeId} is not connected`);
    let raw: unknown;
    try {
      raw = await emit(link);
    } catch {
      throw new FedsimError(
        ErrorCode.EDGE_LOST,
        `edge ${edgeId} sent no ${what}: timed out after ${timeoutMs} ms`,
      );
    }
    const ack = raw as Ack;
    if (ack && typeof ack === "object" && ack.ok === false) {
      const refusal = safeParseUntrusted(refusalSchema, raw);
      if (!refusal.success) throw new FedsimError(ErrorCode.BAD_PAYLOAD, `edge ${edgeId}: malformed refusal`);
      // On a stage, the edge's word on its own client (it timed out, or left) keeps the client's code.
      const code = refusal.data.code;
      throw new FedsimError(
        passClientCodes && clientCodes.has(code) ? (code as ErrorCode) : ErrorCode.EDGE_LOST,
        `edge ${edgeId} refused the ${what}: ${refusal.data.code}: ${refusal.data.message}`,
      );
    }
    const parsed = safeParseUntrusted(schema, raw);
    if (!parsed.success) {
      throw new FedsimError(
        ErrorCode.BAD_PAYLOAD,
        `edge ${edgeId}: malformed ${what}: ${formatZodIssues(parsed.error).join("; ")}`,
      );
    }
    return parsed.data;
  }

  /**
   * Asks an edge to start one asynchronous fit; resolves whether it holds the client and started
   * it. Rejects with EDGE_LOST when the edge has no link, EDGE_UNREACHABLE when it does not answer
   * in time, BAD_PAYLOAD when the answer is malformed.
   */
  async startFit(edgeId: string, fit: EdgeAsyncFit, timeoutMs: number): Promise<boolean> {
    const link = this.links.get(edgeId);
    if (!link) throw new FedsimError(ErrorCode.EDGE_LOST, `edge ${edgeId} is no longer linked`);
    let raw: unknown;
    try {
      raw = await link.timeout(timeoutMs).emitWithAck("edgeAsyncFit", fit);
    } catch {
      throw new FedsimError(
        ErrorCode.EDGE_UNREACHABLE,
        `edge ${edgeId} did not take the fit within ${timeoutMs} ms`,
      );
    }
    const ack = raw as Ack;
    if (ack && typeof ack === "object" && ack.ok === false) {
      throw new FedsimError(
        ErrorCode.EDGE_UNREACHABLE,
        `edge ${edgeId} refused the fit: ${ack.code}: ${ack.message}`,
      );
    }
    const parsed = safeParseUntrusted(edgeAsyncFitReplySchema, raw);
    if (!parsed.success)
      throw new FedsimError(ErrorCode.BAD_PAYLOAD, `edge ${edgeId}: malformed answer to a fit`);
    return parsed.data.started;
  }

  /**
   * The round's plan on an edge's link, when Redis lost it or the edge's answer: the edge treats
   * a plan it already runs as answered, so a copy never starts a fit twice. Null when the edge
   * does not answer either.
   */
  async resendPlan(edgeId: string, plan: EdgeFitPlan, timeoutMs: number): Promise<EdgeFitReply | null> {
    const link = this.links.get(edgeId);
    if (!link) return null;
    try {
      const raw = await link.timeout(timeoutMs).emitWithAck("edgeFit", plan);
      const parsed = safeParseUntrusted(edgeFitReplySchema, raw);
      return parsed.success && parsed.data.edgeId === edgeId ? parsed.data : null;
    } catch {
      return null;
    }
  }

  cancel(edgeId: string, cancel: EdgeCancel): void {
    this.links.get(edgeId)?.emit("edgeCancel", cancel);
  }

  close(): void {
    for (const link of this.links.values()) link.disconnect(true);
    this.links.clear();
  }

  private onConnection(socket: LinkSocket): void {
    const log = this.options.log;
    let edgeId: string | null = null;
    socket.conn.on("packet", (packet: { data?: unknown }) => {
      this.bytesReceived += packetBytes(packet.data);
    });
    socket.on("edgeHello", (raw, ack) => {
      const reply = typeof ack === "function" ? ack : () => {};
      const parsed = safeParseUntrusted(edgeHelloSchema, raw);
      if (!parsed.success) {
        reply(
          refusal(ErrorCode.BAD_PAYLOAD, `malformed edgeHello: ${formatZodIssues(parsed.error).join("; ")}`),
        );
        return void socket.disconnect(true);
      }
      const denied = this.admission(parsed.data.token, socket.handshake.address);
      if (denied) {
        log(`edges: refused a link from ${socket.handshake.address}: ${denied}`);
        reply(refusal(ErrorCode.UNAUTHORIZED, denied));
        return void socket.disconnect(true);
      }
      edgeId = parsed.data.edgeId;
      const previous = this.links.get(edgeId);
      this.links.set(edgeId, socket);
      if (previous && previous !== socket) {
        previous.disconnect(true);
        this.options.onLinkClosed(edgeId);
      }
      log(`edges: ${edgeId} linked from ${socket.handshake.address}`);
      reply({ ok: true, ...this.options.welcome });
      this.options.onLinked(edgeId);
    });
    socket.on("edgeWeights", (raw, ack) => {
      const reply = typeof ack === "function" ? ack : () => {};
      const parsed = safeParseUntrusted(edgeWeightsRequestSchema, raw);
      if (edgeId === null || !parsed.success)
        return reply(refusal(ErrorCode.UNKNOWN_CLIENT, "say edgeHello first"));
      const weights = this.options.weightsFor(parsed.data.round, parsed.data.key);
      if (!weights) return reply(refusal(ErrorCode.STALE_ROUND, `round ${parsed.data.round} is not running`));
      this.weightsServed++;
      reply({ ok: true, ...weights });
    });
    socket.on("edgeOutcome", (raw) => {
      if (edgeId === null || this.links.get(edgeId) !== socket) return;
      const parsed = safeParseUntrusted(edgeOutcomeSchema, raw);
      if (!parsed.success) {
        log(
          `edges: malformed outcome from ${edgeId}: ${formatZodIssues(parsed.error).slice(0, 3).join("; ")}`,
        );
        return;
      }
      try {
        this.options.onOutcome(edgeId, parsed.data);
      } catch (err) {
        log(`edges: outcome from ${edgeId} refused: ${describeError(err)}`);
      }
    });
    socket.on("edgeSealed", (raw, ack) => {
      const reply = typeof ack === "function" ? ack : () => {};
      if (edgeId === null || this.links.get(edgeId) !== socket)
        return reply(refusal(ErrorCode.UNKNOWN_CLIENT, "say edgeHello first"));
      const parsed = safeParseUntrusted(edgeSealedSchema, raw);
      if (!parsed.success) {
        return reply(
          refusal(ErrorCode.BAD_PAYLOAD, `malformed edgeSealed: ${formatZodIssues(parsed.error).join("; ")}`),
        );
      }
      this.options.onSealed(edgeId, parsed.data).then(
        () => reply({ ok: true }),
        (err) => {
          const code = err instanceof FedsimError ? err.code : ErrorCode.BAD_PAYLOAD;
          log(`edges: sealed update from ${parsed.data.clientId} via ${edgeId} refused: ${code}`);
          reply(refusal(code, describeError(err)));
        },
      );
    });
    socket.on("disconnect", (reason) => {
      if (edgeId === null || this.links.get(edgeId) !== socket) return;
      this.links.delete(edgeId);
      log(`edges: ${edgeId} link closed (${reason})`);
      this.options.onLinkClosed(edgeId);
    });
  }

  private admission(token: string | undefined, address: string): string | null {
    const expected = this.options.token;
    if (expected === undefined) {
      return isLoopbackAddress(address) ? null : "edges from other hosts need the coordinator's --edge-token";
    }
    const a = Buffer.from(token ?? "");
    const b = Buffer.from(expected);
    return a.length === b.length && timingSafeEqual(a, b) ? null : "wrong or missing edge token";
  }
}

function refusal(code: ErrorCode, message: string): { ok: false; code: ErrorCode; message: string } {
  return { ok: false, code, message };
}

function packetBytes(data: unknown): number {
  if (typeof data === "string") return Buffer.byteLength(data);
  if (data instanceof Uint8Array) return data.byteLength;
  if (data instanceof ArrayBuffer) return data.byteLength;
  return 0;
}
