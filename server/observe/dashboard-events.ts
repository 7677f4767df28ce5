import type { FailureReason } from "../../common/strategy/strategy.js";
import type { RoundPhase } from "../round-record.js";

/**
 * The `/dashboard` namespace's events (server → browser only; docs/PROTOCOL.md, "Dashboard
 * namespace"). They carry counts, scores and client states: never weights, updates or a
 * client's own reports (loss, example count), which DP and SecAgg keep even from the coordinator.
 */
export interface DashboardServerEvents {
  /** On connect: everything so far, so a page opened mid-run draws the whole history. */
  snapshot: (snapshot: DashboardSnapshot) => void;
  phase: (phase: DashboardPhase) => void;
  /** State changes of the current round's clients, batched, in the order they happened. */
  clients: (update: { round: number; clients: DashboardClient[] }) => void;
  round: (round: DashboardRound) => void;
}

/** The browser sends nothing: the namespace is read-only. */
export type DashboardClientEvents = Record<string, never>;

/**
 * A sampled client's state in the current round. "uploading": its reply's header has arrived and
 * the update's bytes are on their way (a transport that cannot tell goes straight to done).
 * "cancelled": over-selection called it off because enough others finished; not a failure.
 */
export type DashboardClientState = "sampled" | "training" | "uploading" | "done" | "failed" | "cancelled";

export interface DashboardClient {
  clientId: string;
  state: DashboardClientState;
  /** Failed or cancelled only: the kind of failure and its error code (CLIENT_TIMEOUT, BAD_SHAPE, …). */
  reason?: FailureReason;
  code?: string;
}

export interface DashboardPhase {
  round: number;
  phase: RoundPhase;
  detail?: string;
}

/** One completed round, as the dashboard draws it (a whitelist of RoundRecord's fields). */
export interface DashboardRound {
  round: number;
  accuracy: number;
  loss: number;
  /** False when centralised evaluation skipped this round; accuracy and loss repeat the last one. */
  evaluated: boolean;
  trainLoss?: number;
  federatedAccuracy?: number;
  participants: number;
  sampled: number;
  failures: number;
  failuresByKind: Partial<Record<FailureReason, number>>;
  /** Failures by error code, e.g. { CLIENT_TIMEOUT: 2, BAD_SHAPE: 1 }. */
  failuresByCode: Record<string, number>;
  cancelled: number;
  bytesSent: number;
  bytesReceived: number;
  seconds: number;
  epsilon?: number;
  /** Why the round kept the previous model, when it did. */
  kept?: string;
}

export type DashboardConfigValue = string | number | boolean;

export interface DashboardSnapshot {
  /** The run's configuration as its launcher describes it (model, strategy, E, B, lr, privacy, …). */
  config: Record<string, DashboardConfigValue>;
  totalRounds: number;
  /** The ε budget the run stops at, when it has one. */
  targetEpsilon?: number;
  rounds: DashboardRound[];
  current: {
    round: number;
    phase: RoundPhase | null;
    detail?: string;
    /** The round the clients belong to: the last one sampled, until the next one samples. */
    clientsRound: number;
    clients: DashboardClient[];
  };
}
