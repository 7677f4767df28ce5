/**
 * What the report's and compare's line charts put on the x axis: rounds; simulated hours for
 * runs on the virtual clock (the time a real federation would have taken); or wall-clock time
 * (what the run took here). Each round's point sits at the time its round ended; the initial
 * model sits at 0.
 */
import { ErrorCode, FedsimError } from "../../common/errors.js";
import type { ReportRound, ReportSummary } from "./summary-schema.js";

export const X_AXIS_CHOICES = ["round", "simulated-hours", "wall-clock"] as const;
export type XAxisChoice = (typeof X_AXIS_CHOICES)[number];

export interface XAxis {
  choice: XAxisChoice;
  /** The axis title. */
  name: string;
  /** Where a round's point goes. */
  of(round: ReportRound): number;
  /** Whether the axis counts whole steps (rounds) rather than a continuous time. */
  whole: boolean;
}

/** Whether every round of the run carries its simulated time (runs on the virtual clock). */
export function hasSimulatedTime(summary: Pick<ReportSummary, "rounds">): boolean {
  return (
    summary.rounds.length > 0 &&
    summary.rounds.every((r) => r.simulatedStart !== undefined && r.simulatedSeconds !== undefined)
  );
}

/** Whether every round of the run says when it started on the wall clock (newer summaries). */
export function hasWallTime(summary: Pick<ReportSummary, "rounds">): boolean {
  return summary.rounds.length > 0 && summary.rounds.every((r) => r.startSeconds !== undefined);
}

/** Wall seconds since the first round began at which the round ended. */
export function wallSecondsAt(round: ReportRound): number {
  return (round.startSeconds ?? Number.NaN) + round.seconds;
}

/** Seconds, minutes or hours: the unit that keeps the longest run's numbers readable. */
function wallUnit(longest: number): { name: string; size: number } {
  if (longest >= 3 * 3600) return { name: "hours", size: 3600 };
  if (longest >= 600) return { name: "minutes", size: 60 };
  return { name: "seconds", size: 1 };
}

/** Simulated hours since the run began at which the round ended. */
export function simulatedHoursAt(round: ReportRound): number {
  return ((round.simulatedStart ?? Number.NaN) + (round.simulatedSeconds ?? Number.NaN)) / 3600;
}

/**
 * The axis for some runs: the one asked for, else simulated hours when every run has them and
 * rounds otherwise. Asking for simulated hours of a run on the real clock is refused, naming it.
 */
export function chooseXAxis(
  runs: readonly { label: string; summary: Pick<ReportSummary, "rounds"> }[],
  choice?: XAxisChoice,
): XAxis {
  const simulated = runs.length > 0 && runs.every((r) => hasSimulatedTime(r.summary));
  const chosen = choice ?? (simulated ? "simulated-hours" : "round");
  if (chosen === "wall-clock") {
    const missing = runs.filter((r) => !hasWallTime(r.summary)).map((r) => r.label);
    if (missing.length > 0) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        "x axis: wall-clock time needs each round's start time",
        missing.map(
          (label) => `${label}: its rounds carry no start time (an older summary); use the round axis`,
        ),
      );
    }
    const longest = Math.max(...runs.flatMap((r) => r.summary.rounds.map(wallSecondsAt)));
    const unit = wallUnit(longest);
    return {
      choice: chosen,
      name: `wall-clock ${unit.name} since the first round`,
      of: (r) => wallSecondsAt(r) / unit.size,
      whole: false,
    };
  }
  if (chosen === "simulated-hours" && !simulated) {
    const real = runs.filter((r) => !hasSimulatedTime(r.summary)).map((r) => r.label);
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      "x axis: simulated hours need runs on the virtual clock",
      real.map((label) => `${label}: its rounds carry no simulated time (clock: real); use the round axis`),
    );
  }
  return chosen === "round"
    ? { choice: chosen, name: "round", of: (r) => r.round, whole: true }
    : { choice: chosen, name: "simulated hours", of: simulatedHoursAt, whole: false };
}
