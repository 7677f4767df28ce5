import { randomBytes } from "node:crypto";
import type { Socket } from "socket.io";
import { checkClientReport, isProtectedRound } from "../common/disclosure.js";
import { describeError, ErrorCode, FedsimError } from "../common/errors.js";
import {
  type Ack,
  type ClientToServerEvents,
  type EvaluateInstructions,
  type EvaluateReply,
  evaluateReplySchema,
  type FitErrorMessage,
  type FitInstructions,
  type FitResultMessage,
  type InterServerEvents,
  type PlainUpdate,
  plainUpdateSchema,
  type ServerToClientEvents,
  type SocketData,
  safeParseUntrusted,
} from "../common/protocol.js";
import type { FailureReason } from "../common/strategy/strategy.js";
import { decodePlainUpdate } from "../common/update-codec.js";
import { float32BytesView, validateWeights } from "../common/weights.js";
import { assertExamplesInRange, assertNormInRange, type ClientLimits } from "./client-limits.js";
import type { ClientProxy, EvaluateRequest, FitOutcome, FitRequest, SecAggStage } from "./client-proxy.js";

export type FedsimSocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

interface PendingFit {
  round: number;
  nonce: string;
  request: FitRequest;
  bytesSent: number;
  resolve: (outcome: FitOutcome) => void;
  timer: NodeJS.Timeout;
}

/** How a finished request ended; decides between STALE_ROUND and REPLAY for late messages. */
type Finished = "accepted" | "refused" | "expired";

/**
 * A connected client as the round loop sees it. Owns the request/response matching for `fit`:
 * one pending request per client, matched by a server-made nonce, with a deadline. Everything
 * the client sends is validated here, at the edge, before it can reach aggregation.
 */
export class SocketClientProxy implements ClientProxy {
  readonly id: string;
  private socket: FedsimSocket;
  private pending: PendingFit | null = null;
  private readonly finished = new Map<string, Finished>();
  private hasFrozen = false;
  private currentRound = 0;
  /** Payload bytes of the last reply to the pending request (accepted or refused). */
  private bytesReceived = 0;

  constructor(
    id: string,
    socket: FedsimSocket,
    private readonly log: (line: string) => void,
    private readonly limits: ClientLimits,
    /** The training-set size the client declared at hello, if it did: a bound on its numExamples. */
    private declaredExamples: number | undefined,
    /** The key the client proved at the handshake; envelopes must be signed by it. */
    readonly publicKey?: Uint8Array,
  ) {
    this.id = id;
    this.socket = socket;
  }

  isSocket(socket: FedsimSocket): boolean {
    return this.socket === socket;
  }

  get connected(): boolean {
    return this.socket.connected;
  }

  /** The same identity reconnected: the new socket replaces the old one. */
  replaceSocket(socket: FedsimSocket, declaredExamples: number | undefined): void {
    const old = this.socket;
    this.socket = socket;
    this.declaredExamples = declaredExamples;
    this.hasFrozen = false;
    if (old !== socket && old.connected) old.disconnect(true);
    this.failPending("disconnect", ErrorCode.CLIENT_DISCONNECTED, "client reconnected during the round");
  }

  fit(request: FitRequest, deadlineMs: number): Promise<FitOutcome> {
    if (this.pending) {
      this.failPending("error", ErrorCode.INTERNAL, "superseded by a new fit request");
    }
    if (!this.socket.connected) {
      return Promise.resolve(this.failure("disconnect", ErrorCode.CLIENT_DISCONNECTED, "not connected"));
    }
    this.currentRound = request.round;
    const nonce = randomBytes(12).toString("hex");
    const ins: FitInstructions = {
      round: request.round,
      nonce,
      deadlineMs,
      config: request.config,
      weights: { specs: request.weights.specs, data: float32BytesView(request.weights.values) },
      ...(request.frozen && !this.hasFrozen
        ? { frozen: { specs: request.frozen.specs, data: float32BytesView(request.frozen.values) } }
        : {}),
      ...(request.dp ? { dp: request.dp } : {}),
      ...(request.envelope ? { envelopeKey: request.envelope.publicKey } : {}),
      ...(request.secagg ? { secagg: request.secagg } : {}),
    };
    if (request.frozen) this.hasFrozen = true;
    const bytesSent = ins.weights.data.byteLength + (ins.frozen?.data.byteLength ?? 0);
    return new Promise<FitOutcome>((resolve) => {
      const timer = setTimeout(() => {
        this.finishPending(
          "expired",
          this.failure("timeout", ErrorCode.CLIENT_TIMEOUT, `no result within ${deadlineMs} ms`),
        );
        this.socket.emit("cancel", { round: request.round, nonce, reason: "deadline passed" });
      }, deadlineMs);
      this.pending = { round: request.round, nonce, request, bytesSent, resolve, timer };
      this.socket.emit("fit", ins);
    });
  }

  cancel(round: number, reason: string): void {
    const pending = this.pending;
    if (!pending || pending.round !== round) return;
    this.finishPending("expired", this.failure("cancelled", ErrorCode.CANCELLED, reason));
    this.socket.emit("cancel", { round, nonce: pending.nonce, reason });
  }

  /** Called by the socket layer for every `fitResult`; the return value is the client's ack. */
  handleResult(message: FitResultMessage): Ack {
    const pending = this.pending;
    const previous = this.finished.get(message.nonce);
    if (!pending || pending.nonce !== message.nonce) {
      if (previous === "accepted") return refuse(ErrorCode.REPLAY, "this update was already received");
      if (previous === "expired" || message.round < this.currentRound) {
        return refuse(
          ErrorCode.STALE_ROUND,
          `round ${message.round} is over (current round ${this.currentRound})`,
        );
      }
      if (previous === "refused") return refuse(ErrorCode.DUPLICATE, "this request was already answered");
      return refuse(ErrorCode.NOT_SAMPLED, `no fit request ${message.nonce} is pending for this client`);
    }
    if (message.round !== pending.round) {
      return this.reject(
        ErrorCode.STALE_ROUND,
        `update is for round ${message.round}, expected ${pending.round}`,
      );
    }
    this.bytesReceived = replyBytes(message);
    try {
      if (pending.request.secagg) return this.acceptMasked(message, pending.request);
      const update = this.unwrap(message, pending.request);
      checkClientReport(isProtectedRound(pending.request), update);
      if (update.numExamples !== undefined)
        assertExamplesInRange(update.numExamples, this.declaredExamples, this.limits);
      const delta = validateWeights(pending.request.weights.specs, update.delta.specs, update.delta.data);
      assertNormInRange(delta, this.limits);
      // No copy: the receive buffer is this message's own (ws assembles each message into a fresh
      // buffer and never reuses it), so the delta may keep it until aggregation.
      this.finishPending("accepted", {
        ok: true,
        clientId: this.id,
        ...(update.numExamples !== undefined ? { numExamples: update.numExamples } : {}),
        delta,
        ...(update.metrics !== undefined ? { metrics: update.metrics } : {}),
        ...(update.clippedBit !== undefined ? { clippedBit: update.clippedBit } : {}),
      });
      return { ok: true };
    } catch (err) {
      const code = err instanceof FedsimError ? err.code : ErrorCode.BAD_PAYLOAD;
      return this.reject(code, describeError(err));
    }
  }

  async evaluate(request: EvaluateRequest, timeoutMs: number): Promise<EvaluateReply> {
    if (!this.socket.connected)
      throw new FedsimError(ErrorCode.CLIENT_DISCONNECTED, `${this.id} is not connected`);
    const sendFrozen = request.frozen !== null && !this.hasFrozen;
    const ins: EvaluateInstructions = {
      round: request.round,
      weights: { specs: request.weights.specs, data: float32BytesView(request.weights.values) },
      ...(sendFrozen && request.frozen
        ? { frozen: { specs: request.frozen.specs, data: float32BytesView(request.frozen.values) } }
        : {}),
    };
    if (sendFrozen) this.hasFrozen = true;
    let raw: unknown;
    try {
      raw = await this.socket.timeout(timeoutMs).emitWithAck("evaluate", ins);
    } catch {
      throw new FedsimError(ErrorCode.CLIENT_TIMEOUT, `no evaluation within ${timeoutMs} ms`);
    }
    const parsed = safeParseUntrusted(evaluateReplySchema, raw);
    if (!parsed.success) {
      const refusal = raw as { ok?: unknown; code?: unknown; message?: unknown } | null;
      const detail =
        refusal?.ok === false
          ? `${String(refusal.code)}: ${String(refusal.message).slice(0, 200)}`
          : "malformed reply";
      throw new FedsimError(ErrorCode.BAD_PAYLOAD, `evaluation refused: ${detail}`);
    }
    const { ok: _ok, ...reply } = parsed.data;
    // Federated evaluation weights each answer by its count; the held-out set is not the training
    // set the hello declared, so only the cap applies.
    assertExamplesInRange(reply.numExamples, undefined, this.limits);
    return reply;
  }

  async secagg(stage: SecAggStage, payload: unknown, timeoutMs: number): Promise<unknown> {
    if (!this.socket.connected)
      throw new FedsimError(ErrorCode.CLIENT_DISCONNECTED, `${this.id} is not connected`);
    return this.socket.timeout(timeoutMs).emitWithAck("secagg", stage, payload);
  }

  /** Under SecAgg the update is a masked vector of exactly n+1 uint32 (the weight rides last). */
  private acceptMasked(message: FitResultMessage, request: FitRequest): Ack {
    const sa = message.secagg;
    if (!sa)
      throw new FedsimError(ErrorCode.BAD_PAYLOAD, "this round uses secure aggregation: send secagg.masked");
    const expected = (request.weights.values.length + 1) * 4;
    if (sa.masked.masked.byteLength !== expected) {
      throw new FedsimError(
        ErrorCode.BAD_SHAPE,
        `masked vector is ${sa.masked.masked.byteLength} bytes, expected ${expected}`,
      );
    }
    if (sa.masked.clientId !== this.id || sa.masked.round !== request.round) {
      throw new FedsimError(ErrorCode.SECAGG_PROTOCOL, "masked input names another client or round");
    }
    checkClientReport(true, sa);
    this.finishPending("accepted", {
      ok: true,
      clientId: this.id,
      delta: new Float32Array(0),
      masked: {
        round: sa.masked.round,
        clientId: sa.masked.clientId,
        masked: new Uint8Array(sa.masked.masked),
      },
    });
    return { ok: true };
  }

  handleError(message: FitErrorMessage): void {
    const pending = this.pending;
    if (!pending || pending.nonce !== message.nonce) return;
    // The code is the client's word: records and logs keep it only if it is one of ours.
    const known = (Object.values(ErrorCode) as string[]).includes(message.code);
    const code = known ? message.code : ErrorCode.INTERNAL;
    const prefix = known ? "" : `(code ${JSON.stringify(message.code)}) `;
    this.finishPending(
      "refused",
      this.failure("error", code, `client reported: ${prefix}${message.message.slice(0, 200)}`),
    );
  }

  handleDisconnect(reason: string): void {
    this.failPending("disconnect", ErrorCode.CLIENT_DISCONNECTED, `disconnected: ${reason}`);
  }

  private unwrap(message: FitResultMessage, request: FitRequest): PlainUpdate {
    if (request.envelope) {
      if (!message.envelope)
        throw new FedsimError(ErrorCode.BAD_PAYLOAD, "this round requires a sealed envelope");
      if (!this.publicKey) {
        throw new FedsimError(
          ErrorCode.UNAUTHORIZED,
          "sealed updates need a client identity (a signing key)",
        );
      }
      return decodePlainUpdate(request.envelope.open(message.envelope, this.publicKey));
    }
    if (!message.update) throw new FedsimError(ErrorCode.BAD_PAYLOAD, "fitResult has no update");
    return plainUpdateSchema.parse(message.update);
  }

  private reject(code: ErrorCode, message: string): Ack {
    this.log(`fitResult from ${this.id} refused: ${code}: ${message}`);
    this.finishPending("refused", this.failure("rejected", code, message));
    return refuse(code, message);
  }

  private failPending(reason: "disconnect" | "error", code: string, message: string): void {
    if (this.pending) this.finishPending("expired", this.failure(reason, code, message));
  }

  private finishPending(how: Finished, outcome: FitOutcome): void {
    const pending = this.pending;
    if (!pending) return;
    clearTimeout(pending.timer);
    this.pending = null;
    const bytes = { sent: pending.bytesSent, received: this.bytesReceived };
    this.bytesReceived = 0;
    this.finished.set(pending.nonce, how);
    if (this.finished.size > 256) {
      const oldest = this.finished.keys().next().value;
      if (oldest !== undefined) this.finished.delete(oldest);
    }
    pending.resolve({ ...outcome, bytes });
  }

  private failure(reason: FailureReason, code: string, message: string): FitOutcome {
    return { ok: false, clientId: this.id, reason, code, message };
  }
}

/** The payload bytes a reply carried: the update's tensor bytes, ciphertext or masked vector. */
function replyBytes(message: FitResultMessage): number {
  if (message.secagg) return message.secagg.masked.masked.byteLength;
  if (message.envelope) return message.envelope.ciphertext.byteLength;
  return message.update?.delta.data.byteLength ?? 0;
}

export function refuse(code: ErrorCode, message: string): { ok: false; code: ErrorCode; message: string } {
  return { ok: false, code, message };
}
