import { describeError, ErrorCode } from "../common/errors.js";
import type {
  DpClientConfig,
  EvaluateReply,
  FitInstructions,
  FitResultMessage,
  TrainMetrics,
} from "../common/protocol.js";
import type { FailureReason, FitConfig } from "../common/strategy/strategy.js";
import type { FlatWeights } from "../common/weights.js";

/** What the round loop asks one client to do. */
export interface FitRequest {
  round: number;
  config: FitConfig;
  /**
   * Global values of the trainable tensors: a snapshot for this round that nobody writes to, so
   * every proxy may send the same bytes without copying them.
   */
  weights: FlatWeights;
  /** All frozen tensors (a snapshot too); a proxy sends them only when its client does not have them yet. */
  frozen: FlatWeights | null;
  dp?: DpClientConfig;
  secagg?: FitInstructions["secagg"];
  /** Per-round ephemeral public key; the proxy expects a sealed update when set. */
  envelope?: {
    publicKey: Uint8Array;
    /** On the coordinator: checks the sealed update fully (EnvelopeOpener) and resolves to its plaintext. */
    open?: (sealed: unknown, signerPublicKey: Uint8Array) => Promise<Uint8Array>;
    /**
     * On an edge, which holds no round key: hands the sealed update to the coordinator, which
     * opens and checks it; resolves once the coordinator accepted it, else rejects with its code.
     */
    relay?: (sealed: SealedReply) => Promise<void>;
  };
}

/** A sealed reply as an edge relays it: the envelope, and who the edge saw send it. */
export interface SealedReply {
  clientId: string;
  envelope: NonNullable<FitResultMessage["envelope"]>;
  signerPublicKey: Uint8Array;
  declaredExamples: number | undefined;
}

export interface FitSuccess {
  ok: true;
  clientId: string;
  /** The client's example count and training metrics: only in unprotected rounds (common/disclosure.ts). */
  numExamples?: number;
  /** local − global over the trainable tensors, already validated (shape, finiteness). */
  delta: Float32Array;
  metrics?: TrainMetrics;
  clippedBit?: 0 | 1;
  /** Under secure aggregation: the masked vector (delta is then empty). */
  masked?: { round: number; clientId: string; masked: Uint8Array };
  /** Payload bytes of the request sent and the reply received, when the transport knows them. */
  bytes?: TransferBytes;
}

export interface TransferBytes {
  sent: number;
  received: number;
}

export interface FitFailure {
  ok: false;
  clientId: string;
  reason: FailureReason;
  code: string;
  message: string;
  bytes?: TransferBytes;
}

export type FitOutcome = FitSuccess | FitFailure;

export interface EvaluateRequest {
  round: number;
  /** Global values of the trainable tensors. */
  weights: FlatWeights;
  frozen: FlatWeights | null;
}

/**
 * The round loop's only view of a client. The Socket.IO layer implements it for real
 * connections; tests implement it in memory. `fit` never rejects: every failure is an outcome.
 */
export interface ClientProxy {
  readonly id: string;
  fit(request: FitRequest, deadlineMs: number): Promise<FitOutcome>;
  /**
   * Ends a pending fit early (over-selection: enough others already finished). The pending fit
   * resolves as a "cancelled" failure and any late reply is refused as stale.
   */
  cancel?(round: number, reason: string): void;
  /** Federated evaluation of the global model on the client's own data (rejects on failure). */
  evaluate?(request: EvaluateRequest, timeoutMs: number): Promise<EvaluateReply>;
  /** One secure-aggregation stage: send a message, await the client's reply (rejects on timeout). */
  secagg?(stage: SecAggStage, payload: unknown, timeoutMs: number): Promise<unknown>;
  /**
   * Under secure aggregation, where this client's masked input stays when something between it
   * and the coordinator sums masked inputs (its edge): its fit success then carries no `masked`.
   */
  readonly maskedHolder?: MaskedInputHolder;
}

/** Holds masked inputs of several clients and hands over only their sum mod 2^32 (an edge). */
export interface MaskedInputHolder {
  readonly id: string;
  /** Σ masked vectors mod 2^32 over exactly `clientIds`, accepted in round `round`; rejects with a FedsimError. */
  maskedSum(round: number, clientIds: readonly string[], timeoutMs: number): Promise<Uint32Array>;
}

/**
 * `client.fit`, held to the contract above: a proxy whose promise rejects anyway becomes an
 * INTERNAL "error" outcome for that client, so one broken proxy never fails a round or the
 * asynchronous loop.
 */
export function fitOrInternalError(
  client: ClientProxy,
  request: FitRequest,
  deadlineMs: number,
): Promise<FitOutcome> {
  return client.fit(request, deadlineMs).catch(
    (err): FitOutcome => ({
      ok: false,
      clientId: client.id,
      reason: "error",
      code: ErrorCode.INTERNAL,
      message: describeError(err),
    }),
  );
}

export type SecAggStage = "advertise" | "share" | "routed" | "unmask";

/** The set of clients the round loop may sample from, and a way to wait for enough of them. */
export interface ClientDirectory {
  connected(): ClientProxy[];
  waitForClients(count: number, timeoutMs: number): Promise<boolean>;
}
