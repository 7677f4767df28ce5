import { randomBytes } from "node:crypto";
import type { Socket } from "socket.io";
import { describeError, ErrorCode, FedsimError } from "../common/errors.js";
import type {
  Ack,
  ClientToServerEvents,
  EvaluateInstructions,
  EvaluateReply,
  FitErrorMessage,
  FitInstructions,
  FitResultMessage,
  InterServerEvents,
  PlainUpdate,
  ServerToClientEvents,
  SocketData,
} from "../common/protocol.js";
import type { FailureReason } from "../common/strategy/strategy.js";
import { float32BytesView } from "../common/weights.js";
import type { ClientLimits } from "./client-limits.js";
import type { ClientProxy, EvaluateRequest, FitOutcome, FitRequest, SecAggStage } from "./client-proxy.js";
import {
  acceptFit,
  type Finished,
  lateReplyRefusal,
  openSealedUpdate,
  readEvaluateReply,
  refuse,
  relaySealedUpdate,
  replyBytes,
  reportedFailure,
} from "./fit-validation.js";

export type FedsimSocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

interface PendingFit {
  round: number;
  nonce: string;
  request: FitRequest;
  bytesSent: number;
  resolve: (outcome: FitOutcome) => void;
  timer: NodeJS.Timeout;
  /** Set while a sealed reply is being opened: a second reply meanwhile is a duplicate. */
  opening?: boolean;
}

/**
 * A connected client as the round loop sees it. Owns the request/response matching for `fit`:
 * one pending request per client, matched by a server-made nonce, with a deadline. Everything
 * the client sends is validated here, at the edge, before it can reach aggregation.
 */
export class SocketClientProxy implements ClientProxy {
  readonly id: string;
  private socket: FedsimSocket;
  private pending: PendingFit | null = null;
  private readonly stagesInFlight = new Set<(err: Error) => void>();
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

  /** Called by the socket layer for every `fitResult`; resolves to the client's ack. */
  async handleResult(message: FitResultMessage): Promise<Ack> {
    const pending = this.pending;
    if (!pending || pending.nonce !== message.nonce) {
      return lateReplyRefusal(this.finished.get(message.nonce), message, this.currentRound);
    }
    if (pending.opening) {
      return refuse(ErrorCode.DUPLICATE, "a reply to this request is already being opened");
    }
    if (message.round !== pending.round) {
      return this.reject(
        ErrorCode.STALE_ROUND,
        `update is for round ${message.round}, expected ${pending.round}`,
      );
    }
    this.bytesReceived = replyBytes(message);
    try {
      let opened: PlainUpdate | undefined;
      if (pending.request.envelope?.relay) {
        // An edge: the coordinator opened and accepted it; the plaintext never comes here.
        pending.opening = true;
        await relaySealedUpdate(this.id, message, pending.request, this.publicKey, this.declaredExamples);
        if (this.pending !== pending) return this.lateRefusal(message);
        this.finishPending("accepted", { ok: true, clientId: this.id, delta: new Float32Array(0) });
        return { ok: true };
      }
      if (pending.request.envelope) {
        pending.opening = true;
        opened = await openSealedUpdate(message, pending.request, this.publicKey);
        // The deadline, a cancel or a disconnect may have ended the request meanwhile.
        if (this.pending !== pending) return this.lateRefusal(message);
      }
      const bounds = { limits: this.limits, declaredExamples: this.declaredExamples };
      this.finishPending("accepted", acceptFit(this.id, message, pending.request, bounds, opened));
      return { ok: true };
    } catch (err) {
      if (this.pending !== pending) return this.lateRefusal(message);
      const code = err instanceof FedsimError ? err.code : ErrorCode.BAD_PAYLOAD;
      return this.reject(code, describeError(err));
    } finally {
      pending.opening = false;
    }
  }

  private lateRefusal(message: FitResultMessage): Ack {
    return lateReplyRefusal(this.finished.get(message.nonce), message, this.currentRound);
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
    return readEvaluateReply(raw, this.limits);
  }

  /** A stage in flight fails as soon as the client disconnects, not at its timeout. */
  async secagg(stage: SecAggStage, payload: unknown, timeoutMs: number): Promise<unknown> {
    if (!this.socket.connected)
      throw new FedsimError(ErrorCode.CLIENT_DISCONNECTED, `${this.id} is not connected`);
    let onGone: (err: Error) => void = () => {};
    const gone = new Promise<never>((_, reject) => {
      onGone = reject;
    });
    this.stagesInFlight.add(onGone);
    try {
      return await Promise.race([this.socket.timeout(timeoutMs).emitWithAck("secagg", stage, payload), gone]);
    } finally {
      this.stagesInFlight.delete(onGone);
    }
  }

  handleError(message: FitErrorMessage): void {
    const pending = this.pending;
    if (!pending || pending.nonce !== message.nonce) return;
    // The code is the client's word: records and logs keep it only if it is one of ours.
    const reported = reportedFailure(message);
    this.finishPending("refused", this.failure("error", reported.code, reported.message));
  }

  handleDisconnect(reason: string): void {
    const gone = new FedsimError(ErrorCode.CLIENT_DISCONNECTED, `${this.id} is not connected (${reason})`);
    for (const reject of this.stagesInFlight) reject(gone);
    this.failPending("disconnect", ErrorCode.CLIENT_DISCONNECTED, `disconnected: ${reason}`);
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

export { refuse };
