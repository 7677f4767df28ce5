import { randomBytes } from "node:crypto";
import { describeError, ErrorCode, FedsimError } from "../common/errors.js";
import {
  decodeIndices,
  POOL_WEIGHT_VERSIONS,
  poolFitErrorSchema,
  poolFitResultSchema,
  poolIndicesSchema,
  poolLeaveSchema,
  virtualClientId,
} from "../common/pool-protocol.js";
import { type Ack, type EvaluateReply, formatZodIssues, safeParseUntrusted } from "../common/protocol.js";
import type { FailureReason } from "../common/strategy/strategy.js";
import { type FlatWeights, float32BytesView } from "../common/weights.js";
import type { ClientLimits } from "./client-limits.js";
import type { ClientProxy, EvaluateRequest, FitOutcome, FitRequest } from "./client-proxy.js";
import {
  acceptFit,
  type Finished,
  lateReplyRefusal,
  readEvaluateReply,
  refuse,
  replyBytes,
  reportedFailure,
} from "./fit-validation.js";
import type { FedsimSocket } from "./socket-proxy.js";

/**
 * One virtual client of a pool session, as the round loop sees it. Deliberately small (an id, an
 * index, a flag and its session): a hundred thousand of them sit idle in the registry.
 */
export class VirtualClientProxy implements ClientProxy {
  online = true;
  constructor(
    readonly id: string,
    readonly index: number,
    private readonly session: PoolSession,
  ) {}

  fit(request: FitRequest, deadlineMs: number): Promise<FitOutcome> {
    return this.session.fit(this, request, deadlineMs);
  }

  cancel(round: number, reason: string): void {
    this.session.cancel(this, round, reason);
  }

  evaluate(request: EvaluateRequest, timeoutMs: number): Promise<EvaluateReply> {
    return this.session.evaluate(this, request, timeoutMs);
  }

  secagg(): Promise<unknown> {
    return Promise.reject(new FedsimError(ErrorCode.INCOMPATIBLE_OPTIONS, NO_PER_CLIENT_KEYS));
  }
}

const NO_PER_CLIENT_KEYS =
  "a pool session's virtual clients hold no keys of their own: envelopes and secure aggregation need one connection per client";

interface PendingFit {
  round: number;
  nonce: string;
  request: FitRequest;
  bytesSent: number;
  resolve: (outcome: FitOutcome) => void;
  timer: NodeJS.Timeout;
}

export interface PoolSessionOptions {
  /** The pool's proven key: every virtual id derives from it. */
  publicKey: Uint8Array;
  socket: FedsimSocket;
  maxClients: number;
  /** Bounds on each virtual client's example count and update norm, as for any client. */
  limits: ClientLimits;
  /** Whether another live session of the same key already hosts this index. */
  isHostedElsewhere: (index: number) => boolean;
  /** Called when clients come online (the directory's waiters). */
  onJoin: () => void;
  log: (line: string) => void;
}

/** How many finished requests a session remembers, to answer late and repeated replies precisely. */
const FINISHED_MEMORY = 4096;

/**
 * The coordinator's side of one pool session: its virtual clients, their pending requests and
 * the weight versions already sent to the pool. Every reply is checked exactly as a lone
 * client's is (server/fit-validation.ts).
 */
export class PoolSession {
  readonly clients = new Map<number, VirtualClientProxy>();
  private online = 0;
  private readonly pending = new Map<number, PendingFit>();
  private readonly finished = new Map<string, { index: number; how: Finished }>();
  private currentRound = 0;
  private readonly versions: { values: Float32Array; version: number }[] = [];
  private nextVersion = 0;
  private frozenSent = false;
  private closed = false;

  constructor(private readonly options: PoolSessionOptions) {}

  get onlineCount(): number {
    return this.online;
  }

  /** Brings the indices online, registering the ones new to this session; all or none. */
  join(indices: Int32Array): Ack<{ online: number }> {
    const fresh = new Set<number>();
    for (const index of indices) {
      if (this.clients.has(index) || fresh.has(index)) continue;
      if (this.options.isHostedElsewhere(index)) {
        return refuse(ErrorCode.DUPLICATE, `virtual client ${index} is already hosted by another session`);
      }
      fresh.add(index);
    }
    if (this.clients.size + fresh.size > this.options.maxClients) {
      return refuse(
        ErrorCode.TOO_MANY_CLIENTS,
        `a pool session may host at most ${this.options.maxClients} virtual clients`,
      );
    }
    for (const index of fresh) {
      const id = virtualClientId(this.options.publicKey, index);
      this.clients.set(index, new VirtualClientProxy(id, index, this));
    }
    for (const index of indices) {
      const proxy = this.clients.get(index) as VirtualClientProxy;
      if (!proxy.online || fresh.has(index)) this.online++;
      proxy.online = true;
    }
    this.options.onJoin();
    return { ok: true, online: this.online };
  }

  /**
   * Takes the indices offline; a pending fit fails as a disconnect. All or none. Released clients
   * leave the session altogether, so that another session of the same key may host them.
   */
  leave(indices: Int32Array, release = false): Ack<{ online: number }> {
    for (const index of indices) {
      if (!this.clients.has(index))
        return refuse(ErrorCode.UNKNOWN_CLIENT, `no virtual client ${index} here`);
    }
    for (const index of indices) {
      const proxy = this.clients.get(index) as VirtualClientProxy;
      if (proxy.online) this.online--;
      proxy.online = false;
      this.fail(index, "disconnect", ErrorCode.CLIENT_DISCONNECTED, "virtual client left");
      if (release) this.clients.delete(index);
    }
    return { ok: true, online: this.online };
  }

  fit(proxy: VirtualClientProxy, request: FitRequest, deadlineMs: number): Promise<FitOutcome> {
    const index = proxy.index;
    this.fail(index, "error", ErrorCode.INTERNAL, "superseded by a new fit request");
    if (this.closed || !proxy.online) {
      return Promise.resolve(failure(proxy.id, "disconnect", ErrorCode.CLIENT_DISCONNECTED, "not connected"));
    }
    if (request.envelope || request.secagg) {
      return Promise.resolve(failure(proxy.id, "error", ErrorCode.INCOMPATIBLE_OPTIONS, NO_PER_CLIENT_KEYS));
    }
    this.currentRound = Math.max(this.currentRound, request.round);
    const { version, bytes } = this.versionFor(request.weights, request.frozen);
    const nonce = randomBytes(12).toString("hex");
    return new Promise<FitOutcome>((resolve) => {
      const timer = setTimeout(() => {
        this.finish(
          index,
          "expired",
          failure(proxy.id, "timeout", ErrorCode.CLIENT_TIMEOUT, `no result within ${deadlineMs} ms`),
        );
        this.options.socket.emit("poolCancel", {
          index,
          round: request.round,
          nonce,
          reason: "deadline passed",
        });
      }, deadlineMs);
      this.pending.set(index, { round: request.round, nonce, request, bytesSent: bytes, resolve, timer });
      this.options.socket.emit("poolFit", {
        index,
        round: request.round,
        nonce,
        deadlineMs,
        version,
        config: request.config,
        ...(request.dp ? { dp: request.dp } : {}),
      });
    });
  }

  cancel(proxy: VirtualClientProxy, round: number, reason: string): void {
    const pending = this.pending.get(proxy.index);
    if (!pending || pending.round !== round) return;
    this.finish(proxy.index, "expired", failure(proxy.id, "cancelled", ErrorCode.CANCELLED, reason));
    this.options.socket.emit("poolCancel", { index: proxy.index, round, nonce: pending.nonce, reason });
  }

  async evaluate(
    proxy: VirtualClientProxy,
    request: EvaluateRequest,
    timeoutMs: number,
  ): Promise<EvaluateReply> {
    if (this.closed || !proxy.online) {
      throw new FedsimError(ErrorCode.CLIENT_DISCONNECTED, `${proxy.id} is not connected`);
    }
    const { version } = this.versionFor(request.weights, request.frozen);
    let raw: unknown;
    try {
      raw = await this.options.socket
        .timeout(timeoutMs)
        .emitWithAck("poolEvaluate", { index: proxy.index, round: request.round, version });
    } catch {
      throw new FedsimError(ErrorCode.CLIENT_TIMEOUT, `no evaluation within ${timeoutMs} ms`);
    }
    return readEvaluateReply(raw, this.options.limits);
  }

  /** A `poolFitResult`; the return value is the pool's ack. */
  handleResult(raw: unknown): Ack {
    const parsed = safeParseUntrusted(poolFitResultSchema, raw);
    if (!parsed.success) {
      return refuse(
        ErrorCode.BAD_PAYLOAD,
        `malformed poolFitResult: ${formatZodIssues(parsed.error).join("; ")}`,
      );
    }
    const message = parsed.data;
    const proxy = this.clients.get(message.index);
    if (!proxy)
      return refuse(ErrorCode.UNKNOWN_CLIENT, `this session hosts no virtual client ${message.index}`);
    const pending = this.pending.get(message.index);
    if (!pending || pending.nonce !== message.nonce) {
      const previous = this.finished.get(message.nonce);
      const own = previous?.index === message.index ? previous.how : undefined;
      return lateReplyRefusal(own, message, this.currentRound);
    }
    if (message.round !== pending.round) {
      const detail = `update is for round ${message.round}, expected ${pending.round}`;
      return this.reject(proxy, ErrorCode.STALE_ROUND, detail, replyBytes(message));
    }
    const received = replyBytes(message);
    try {
      // Virtual clients declare no training-set size: only the coordinator's cap bounds their counts.
      const bounds = { limits: this.options.limits, declaredExamples: undefined };
      this.finish(proxy.index, "accepted", acceptFit(proxy.id, message, pending.request, bounds), received);
      return { ok: true };
    } catch (err) {
      const code = err instanceof FedsimError ? err.code : ErrorCode.BAD_PAYLOAD;
      return this.reject(proxy, code, describeError(err), received);
    }
  }

  handleError(raw: unknown): void {
    const parsed = safeParseUntrusted(poolFitErrorSchema, raw);
    if (!parsed.success) return;
    const proxy = this.clients.get(parsed.data.index);
    const pending = this.pending.get(parsed.data.index);
    if (!proxy || !pending || pending.nonce !== parsed.data.nonce) return;
    const reported = reportedFailure(parsed.data);
    this.finish(proxy.index, "refused", failure(proxy.id, "error", reported.code, reported.message));
  }

  /** The pool's connection is gone: every pending fit fails and its clients leave the registry. */
  close(reason: string): void {
    this.closed = true;
    for (const index of [...this.pending.keys()]) {
      this.fail(index, "disconnect", ErrorCode.CLIENT_DISCONNECTED, `disconnected: ${reason}`);
    }
    this.clients.clear();
    this.online = 0;
  }

  /** The version the pool knows these weights by, sending them first if it does not have them. */
  private versionFor(weights: FlatWeights, frozen: FlatWeights | null): { version: number; bytes: number } {
    const known = this.versions.find((v) => v.values === weights.values);
    if (known) return { version: known.version, bytes: 0 };
    const version = ++this.nextVersion;
    const sendFrozen = frozen !== null && !this.frozenSent;
    this.options.socket.emit("poolWeights", {
      version,
      weights: { specs: weights.specs, data: float32BytesView(weights.values) },
      ...(sendFrozen ? { frozen: { specs: frozen.specs, data: float32BytesView(frozen.values) } } : {}),
    });
    if (sendFrozen) this.frozenSent = true;
    this.versions.push({ values: weights.values, version });
    if (this.versions.length > POOL_WEIGHT_VERSIONS) this.versions.shift();
    return { version, bytes: weights.values.byteLength + (sendFrozen ? frozen.values.byteLength : 0) };
  }

  private reject(proxy: VirtualClientProxy, code: ErrorCode, message: string, received: number): Ack {
    this.options.log(`poolFitResult for ${proxy.id} refused: ${code}: ${message}`);
    this.finish(proxy.index, "refused", failure(proxy.id, "rejected", code, message), received);
    return refuse(code, message);
  }

  private fail(index: number, reason: FailureReason, code: string, message: string): void {
    const proxy = this.clients.get(index);
    if (proxy && this.pending.has(index))
      this.finish(index, "expired", failure(proxy.id, reason, code, message));
  }

  private finish(index: number, how: Finished, outcome: FitOutcome, received = 0): void {
    const pending = this.pending.get(index);
    if (!pending) return;
    clearTimeout(pending.timer);
    this.pending.delete(index);
    const bytes = { sent: pending.bytesSent, received };
    this.finished.set(pending.nonce, { index, how });
    if (this.finished.size > FINISHED_MEMORY) {
      const oldest = this.finished.keys().next().value;
      if (oldest !== undefined) this.finished.delete(oldest);
    }
    pending.resolve({ ...outcome, bytes });
  }
}

function failure(clientId: string, reason: FailureReason, code: string, message: string): FitOutcome {
  return { ok: false, clientId, reason, code, message };
}

/** Routes a socket's pool events to its session; UNKNOWN_CLIENT when the socket opened none. */
export function servePoolEvents(
  socket: FedsimSocket,
  sessionOf: () => PoolSession | null,
  countRefusal: (code: string) => void,
): void {
  const withSession = <T extends object>(ack: unknown, body: (session: PoolSession) => Ack<T>) => {
    const reply = typeof ack === "function" ? (ack as (a: Ack<T>) => void) : () => {};
    const session = sessionOf();
    let result: Ack<T>;
    if (!session)
      result = refuse(ErrorCode.UNKNOWN_CLIENT, "open a pool session (hello with pool: true) first");
    else {
      try {
        result = body(session);
      } catch (err) {
        result = refuse(err instanceof FedsimError ? err.code : ErrorCode.INTERNAL, describeError(err));
      }
    }
    if (!result.ok) countRefusal(result.code);
    reply(result);
  };
  const indices = (raw: unknown, schema = poolIndicesSchema): Int32Array => {
    const parsed = safeParseUntrusted(schema, raw);
    if (!parsed.success) {
      throw new FedsimError(
        ErrorCode.BAD_PAYLOAD,
        `malformed indices: ${formatZodIssues(parsed.error).join("; ")}`,
      );
    }
    return decodeIndices(parsed.data.indices);
  };
  socket.on("poolJoin", (raw, ack) => withSession(ack, (s) => s.join(indices(raw))));
  socket.on("poolLeave", (raw, ack) =>
    withSession(ack, (s) => s.leave(indices(raw, poolLeaveSchema), raw?.release === true)),
  );
  socket.on("poolFitResult", (raw, ack) => withSession(ack, (s) => s.handleResult(raw)));
  socket.on("poolFitError", (raw) => sessionOf()?.handleError(raw));
}
