import type { FailureReason } from "../../common/strategy/strategy.js";
import type { FitOutcome } from "../client-proxy.js";
import type { RoundPhase, RoundRecord } from "../round-record.js";
import type {
  DashboardClient,
  DashboardClientState,
  DashboardConfigValue,
  DashboardPhase,
  DashboardRound,
  DashboardSnapshot,
} from "./dashboard-events.js";

/**
 * What the dashboard knows about the run, built from the coordinator's hooks. No sockets here:
 * every method returns the changes it made, and dashboard-namespace.ts sends them.
 */
export class DashboardState {
  private readonly rounds: DashboardRound[] = [];
  private phaseNow: DashboardPhase | null = null;
  /** The round the client table belongs to: the last one sampled, kept until the next samples. */
  private clientsRound = 0;
  private readonly clients = new Map<string, DashboardClient>();

  constructor(
    private readonly config: Record<string, DashboardConfigValue>,
    private readonly totalRounds: number,
    private readonly targetEpsilon?: number,
  ) {}

  /** The round the client table belongs to. */
  get clientRound(): number {
    return this.clientsRound;
  }

  /** Rounds a resumed run already has: the page draws them as history. */
  addHistory(records: readonly RoundRecord[]): void {
    for (const r of records) this.rounds.push(dashboardRound(r));
  }

  phase(
    round: number,
    phase: RoundPhase,
    detail?: string,
  ): { phase: DashboardPhase; clients: DashboardClient[] } {
    this.phaseNow = { round, phase, ...(detail !== undefined ? { detail } : {}) };
    // The requests leave right after this phase begins: every sampled client is now training.
    const changed =
      phase === "COLLECTING" && round === this.clientsRound ? this.moveAll("sampled", "training") : [];
    return { phase: this.phaseNow, clients: changed };
  }

  /** The round's sample, over-selected clients included. */
  sampled(round: number, clientIds: readonly string[]): DashboardClient[] {
    this.clientsRound = round;
    this.clients.clear();
    return clientIds.map((clientId) => this.set({ clientId, state: "sampled" }));
  }

  /** A client's reply began to arrive; only a training client becomes an uploading one. */
  uploadStarted(clientId: string): DashboardClient | null {
    const client = this.clients.get(clientId);
    if (client?.state !== "training") return null;
    return this.set({ clientId, state: "uploading" });
  }

  /**
   * A client's outcome. One for a newer round than the table's starts that round's table: the
   * asynchronous loop samples no round, so its table lists the outcomes of the version in the making.
   */
  outcome(round: number, outcome: FitOutcome): DashboardClient | null {
    if (round < this.clientsRound) return null;
    if (round > this.clientsRound) {
      this.clientsRound = round;
      this.clients.clear();
    }
    if (outcome.ok) return this.set({ clientId: outcome.clientId, state: "done" });
    return this.set({
      clientId: outcome.clientId,
      state: outcome.reason === "cancelled" ? "cancelled" : "failed",
      reason: outcome.reason,
      code: outcome.code,
    });
  }

  /**
   * The round's record: its summary, and the failures no outcome reported (clients that failed
   * while the round was prepared, e.g. a SecAgg key stage).
   */
  roundDone(record: RoundRecord): { round: DashboardRound; clients: DashboardClient[] } {
    const changed: DashboardClient[] = [];
    if (record.round === this.clientsRound) {
      for (const f of record.failureDetails) {
        if (this.clients.get(f.clientId)?.state === "failed") continue;
        changed.push(
          this.set({
            clientId: f.clientId,
            state: "failed",
            reason: f.reason as FailureReason,
            code: f.code,
          }),
        );
      }
    }
    const round = dashboardRound(record);
    this.rounds.push(round);
    return { round, clients: changed };
  }

  snapshot(): DashboardSnapshot {
    return {
      config: this.config,
      totalRounds: this.totalRounds,
      ...(this.targetEpsilon !== undefined ? { targetEpsilon: this.targetEpsilon } : {}),
      rounds: [...this.rounds],
      current: {
        round: this.phaseNow?.round ?? this.rounds.at(-1)?.round ?? 0,
        phase: this.phaseNow?.phase ?? null,
        ...(this.phaseNow?.detail !== undefined ? { detail: this.phaseNow.detail } : {}),
        clientsRound: this.clientsRound,
        clients: [...this.clients.values()],
      },
    };
  }

  private moveAll(from: DashboardClientState, to: DashboardClientState): DashboardClient[] {
    const changed: DashboardClient[] = [];
    for (const c of this.clients.values()) {
      if (c.state === from) changed.push(this.set({ clientId: c.clientId, state: to }));
    }
    return changed;
  }

  private set(client: DashboardClient): DashboardClient {
    this.clients.set(client.clientId, client);
    return client;
  }
}

/** A round record as the dashboard sends it: counts and scores only, by whitelist. */
export function dashboardRound(r: RoundRecord): DashboardRound {
  const failuresByCode: Record<string, number> = {};
  for (const f of r.failureDetails) failuresByCode[f.code] = (failuresByCode[f.code] ?? 0) + 1;
  return {
    round: r.round,
    accuracy: r.accuracy,
    loss: r.loss,
    evaluated: r.evaluated !== false,
    ...(r.trainLoss !== undefined ? { trainLoss: r.trainLoss } : {}),
    ...(r.federated ? { federatedAccuracy: r.federated.accuracy } : {}),
    participants: r.participants,
    sampled: r.sampled,
    failures: r.failures,
    failuresByKind: { ...r.failuresByKind },
    failuresByCode,
    cancelled: r.cancelled ?? 0,
    bytesSent: r.bytesSent ?? 0,
    bytesReceived: r.bytesReceived ?? 0,
    seconds: r.seconds,
    ...(r.epsilon !== undefined ? { epsilon: r.epsilon } : {}),
    ...(r.kept !== undefined ? { kept: r.kept } : {}),
  };
}
