import type { Distribution } from "../common/distribution.js";
import type { FailureReason } from "../common/strategy/strategy.js";

/**
 * What a round leaves behind: its record (metrics.jsonl, reports, the dashboard, checkpoints) and
 * the phases it passes through. Both loops write these; neither decides what they hold alone.
 */
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
  /** L2 norms of the accepted updates; absent under DP and SecAgg, where the coordinator sees none. */
  updateNorms?: Distribution;
  epsilon?: number;
  clipNorm?: number;
  /** What the strategy reported (e.g. droppedPartial, krumSelected). */
  strategy?: Record<string, number>;
  /** The clients' fit metrics as the strategy's metric aggregation combined them. */
  fitMetrics?: Record<string, number>;
  /** Wall-clock start of the round (ms since the epoch). */
  startedAt: number;
  /** Virtual clock only: simulated seconds since the run began at which the round sampled. */
  simulatedStart?: number;
  /** Virtual clock only: the round's simulated duration, from sampling to its last accepted outcome. */
  simulatedSeconds?: number;
  /**
   * Virtual clock, secure aggregation: each stage's simulated seconds (advertise, share, routed,
   * before training; unmask after it). The round's simulatedSeconds includes them.
   */
  simulatedStages?: Record<string, number>;
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
  /**
   * Over edges (docs/SCALE-OUT.md): every byte the coordinator took in from its edges' links this
   * round (outcomes, partial sums or forwarded updates, framing included); `bytesReceived` is
   * what the clients uploaded to their edges.
   */
  edgeIngressBytes?: number;
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
  /** Who failed, how and with which code (present when some did). */
  failureDetails?: { clientId: string; reason: FailureReason; code: string }[];
  /**
   * Virtual clock only: simulated seconds from the requests to the last answer or failure (the
   * deadline, if one timed out); the round's simulatedSeconds includes them.
   */
  simulatedSeconds?: number;
  /** The answers' metrics as the strategy's aggregateEvaluate combined them. */
  metrics?: Record<string, number>;
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

/** One update the asynchronous loop aggregated: who, what it trained on, and how stale it was. */
export interface UpdateRecord {
  clientId: string;
  /** The model version the client trained on. */
  trainedOn: number;
  /** τ = the version the update met − trainedOn. */
  staleness: number;
  /** The factor it entered with: s(τ) for FedBuff, α·s(τ) for FedAsync. */
  weight: number;
  numExamples: number;
  /** Wall seconds from the fit request to the reply. */
  seconds: number;
  /** Virtual clock only: simulated seconds from the request to the reply's arrival, and that arrival. */
  simulatedSeconds?: number;
  simulatedArrivedAt?: number;
}

export interface StalenessSummary {
  mean: number;
  max: number;
}
