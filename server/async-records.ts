import { ErrorCode } from "../common/errors.js";
import type { FailureReason } from "../common/strategy/strategy.js";
import type { FitOutcome } from "./client-proxy.js";
import type {
  ClientTiming,
  EvaluationResult,
  RoundRecord,
  StalenessSummary,
  UpdateRecord,
} from "./round-record.js";

/**
 * What the asynchronous loop records per server version, in the synchronous round's shape (a
 * "round" is a published version), so summaries, metrics.jsonl and reports read both alike.
 */
export interface VersionRecord extends RoundRecord {
  staleness: StalenessSummary;
  updates: UpdateRecord[];
}

/** A finished fit as the version log takes it. */
export interface FinishedFit {
  outcome: FitOutcome;
  trainedOn: number;
  wallSent: number;
  wallEnded: number;
  /** Virtual clock only. */
  simulated?: { sentAt: number; arrivedAt: number };
}

/** Collects the outcomes of one version until it is published, then writes its record. */
export class VersionLog {
  private readonly wallStart = performance.now();
  private readonly startedAt = Date.now();
  private readonly fits: FinishedFit[] = [];
  private readonly updates: UpdateRecord[] = [];

  constructor(private readonly simulatedStart: number | null) {}

  addFit(fit: FinishedFit): void {
    this.fits.push(fit);
  }

  addUpdate(fit: FinishedFit, staleness: number, weight: number, numExamples: number): UpdateRecord {
    const update: UpdateRecord = {
      clientId: fit.outcome.clientId,
      trainedOn: fit.trainedOn,
      staleness,
      weight,
      numExamples,
      seconds: (fit.wallEnded - fit.wallSent) / 1000,
      ...(fit.simulated
        ? {
            simulatedSeconds: fit.simulated.arrivedAt - fit.simulated.sentAt,
            simulatedArrivedAt: fit.simulated.arrivedAt,
          }
        : {}),
    };
    this.updates.push(update);
    return update;
  }

  /** An accepted reply the strategy refused (e.g. a shape it cannot use): a failure, not an update. */
  refuse(fit: FinishedFit, message: string): void {
    const i = this.fits.indexOf(fit);
    const refused: FinishedFit = {
      ...fit,
      outcome: {
        ok: false,
        clientId: fit.outcome.clientId,
        reason: "error",
        code: ErrorCode.INTERNAL,
        message,
      },
    };
    if (i >= 0) this.fits[i] = refused;
    else this.fits.push(refused);
  }

  finish(
    version: number,
    evaluation: EvaluationResult & { skipped?: true },
    simulatedNow: number | null,
  ): VersionRecord {
    const failed = this.fits.filter((f) => !f.outcome.ok);
    const failuresByKind: Partial<Record<FailureReason, number>> = {};
    for (const f of failed) {
      if (f.outcome.ok) continue;
      failuresByKind[f.outcome.reason] = (failuresByKind[f.outcome.reason] ?? 0) + 1;
    }
    const realFailures = failed.filter((f) => !f.outcome.ok && f.outcome.reason !== "cancelled");
    const trainLosses = this.fits.flatMap((f) =>
      f.outcome.ok && f.outcome.metrics ? [f.outcome.metrics.loss] : [],
    );
    const stalenesses = this.updates.map((u) => u.staleness);
    return {
      round: version,
      accuracy: evaluation.accuracy,
      loss: evaluation.loss,
      ...(evaluation.skipped ? { evaluated: false as const } : {}),
      participants: this.updates.length,
      sampled: this.fits.length,
      failures: realFailures.length,
      failureDetails: realFailures.map((f) => ({
        clientId: f.outcome.clientId,
        reason: f.outcome.ok ? "ok" : f.outcome.reason,
        code: f.outcome.ok ? "" : f.outcome.code,
      })),
      failuresByKind,
      dropouts: failuresByKind.disconnect ?? 0,
      cancelled: failed.length - realFailures.length,
      bytesSent: this.fits.reduce((s, f) => s + (f.outcome.bytes?.sent ?? 0), 0),
      bytesReceived: this.fits.reduce((s, f) => s + (f.outcome.bytes?.received ?? 0), 0),
      clients: this.fits.map((f) => this.timing(f)),
      seconds: (performance.now() - this.wallStart) / 1000,
      startedAt: this.startedAt,
      ...(trainLosses.length > 0
        ? { trainLoss: trainLosses.reduce((a, b) => a + b, 0) / trainLosses.length }
        : {}),
      ...(this.simulatedStart !== null && simulatedNow !== null
        ? { simulatedStart: this.simulatedStart, simulatedSeconds: simulatedNow - this.simulatedStart }
        : {}),
      staleness: {
        mean: stalenesses.length > 0 ? stalenesses.reduce((a, b) => a + b, 0) / stalenesses.length : 0,
        max: stalenesses.length > 0 ? Math.max(...stalenesses) : 0,
      },
      updates: this.updates,
    };
  }

  private timing(f: FinishedFit): ClientTiming {
    const { outcome } = f;
    return {
      clientId: outcome.clientId,
      // Negative when the fit began before this version did: async fits span versions.
      startSeconds: (f.wallSent - this.wallStart) / 1000,
      seconds: (f.wallEnded - f.wallSent) / 1000,
      ...(outcome.ok && outcome.metrics ? { trainSeconds: outcome.metrics.seconds } : {}),
      outcome: outcome.ok ? "ok" : outcome.reason,
      ...(f.simulated
        ? { simulatedSentAt: f.simulated.sentAt, simulatedArrivedAt: f.simulated.arrivedAt }
        : {}),
    };
  }
}
