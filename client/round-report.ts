import type { Ack, FitInstructions, TrainMetrics } from "../common/protocol.js";

/**
 * What a client node did in one round, for its own log (`fedsim client` prints one line per
 * round). Under DP or secure aggregation the loss and example count never reach the coordinator
 * (common/disclosure.ts); they stay in this local line, which says so through `privacy`.
 */
export interface RoundReport {
  round: number;
  examples: number;
  epochs: number;
  trainLoss: number;
  /** The local training time, as the trainer measured it. */
  seconds: number;
  /** Payload bytes of the request's weights (and frozen tensors) and of the update sent back. */
  bytesDown: number;
  bytesUp: number;
  /** "none", or the protections of the round joined by "+": envelope, dp, secagg. */
  privacy: string;
  /** The coordinator's answer to the update. */
  accepted: boolean;
  /** Why it was refused, when it was. */
  code?: string;
}

/** The round's protections as one word: dp, secagg, envelope, joined by "+" ("none" without any). */
export function privacyMode(round: { dp?: unknown; secagg?: unknown; envelopeKey?: unknown }): string {
  const modes = [
    round.dp !== undefined ? "dp" : null,
    round.secagg !== undefined ? "secagg" : null,
    round.envelopeKey !== undefined ? "envelope" : null,
  ].filter((m): m is string => m !== null);
  return modes.length > 0 ? modes.join("+") : "none";
}

/** The report of a fit whose update was sent and answered. */
export function roundReport(
  ins: FitInstructions,
  local: { numExamples: number; metrics: TrainMetrics; bytesUp: number },
  ack: Ack,
): RoundReport {
  return {
    round: ins.round,
    examples: local.numExamples,
    epochs: local.metrics.epochsCompleted,
    trainLoss: local.metrics.loss,
    seconds: local.metrics.seconds,
    bytesDown: ins.weights.data.byteLength + (ins.frozen?.data.byteLength ?? 0),
    bytesUp: local.bytesUp,
    privacy: privacyMode(ins),
    accepted: ack.ok,
    ...(ack.ok ? {} : { code: ack.code }),
  };
}

/** One line of plain text; `--json` prints the report object itself. */
export function formatRoundReport(report: RoundReport): string {
  const local = report.privacy.includes("dp") || report.privacy.includes("secagg") ? " (kept local)" : "";
  return [
    `round ${report.round}: ${report.examples} examples`,
    `${formatCount(report.epochs)} ${report.epochs === 1 ? "epoch" : "epochs"}`,
    `train loss ${report.trainLoss.toFixed(4)}${local}`,
    `${report.seconds.toFixed(2)} s`,
    `${formatBytes(report.bytesDown)} down`,
    `${formatBytes(report.bytesUp)} up`,
    `privacy ${report.privacy}`,
    report.accepted ? "accepted" : `refused ${report.code ?? ""}`.trim(),
  ].join(", ");
}

function formatCount(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(2);
}

/** Bytes in KB or MB with one decimal (1 KB = 1000 bytes). */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1_000_000) return `${(bytes / 1000).toFixed(1)} KB`;
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}
