import { ErrorCode, FedsimError } from "../../common/errors.js";
import { median } from "../timing.js";

/**
 * The arithmetic of the round-overhead section, kept apart from the timing so it can be tested:
 * a round's overhead is its wall time minus the client training on its critical path, compared
 * with the time plain Socket.IO needs to move the same bytes (model down to every client, every
 * update back up).
 */
export interface RoundSample {
  round: number;
  /** Wall time of the round as the round loop records it. */
  roundSeconds: number;
  /** Each sampled client's own local-training time in this round. */
  trainSeconds: readonly number[];
}

/**
 * How the clients trained relative to each other:
 * - "parallel": each on its own core or machine, so only the slowest client's training holds the round up;
 * - "serial": one after another (virtual clients sharing one process's model), so all of it does.
 */
export type TrainingLayout = "parallel" | "serial";

export interface RoundOverhead {
  round: number;
  roundSeconds: number;
  slowestTrainSeconds: number;
  totalTrainSeconds: number;
  /** The training the round had to wait for: the slowest client's (parallel) or the sum (serial). */
  criticalTrainSeconds: number;
  /** roundSeconds − criticalTrainSeconds, never below 0. */
  overheadSeconds: number;
}

function checkSeconds(name: string, value: number): void {
  if (!Number.isFinite(value) || value < 0) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `${name} must be a finite number ≥ 0, got ${value}`);
  }
}

export function overheadOfRound(sample: RoundSample, layout: TrainingLayout): RoundOverhead {
  checkSeconds("roundSeconds", sample.roundSeconds);
  if (sample.trainSeconds.length === 0) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `trainSeconds of round ${sample.round} is empty: no client trained, so there is no overhead to isolate`,
    );
  }
  for (const [i, seconds] of sample.trainSeconds.entries()) checkSeconds(`trainSeconds[${i}]`, seconds);
  const slowest = Math.max(...sample.trainSeconds);
  const total = sample.trainSeconds.reduce((sum, s) => sum + s, 0);
  const critical = layout === "serial" ? total : slowest;
  return {
    round: sample.round,
    roundSeconds: sample.roundSeconds,
    slowestTrainSeconds: slowest,
    totalTrainSeconds: total,
    criticalTrainSeconds: critical,
    overheadSeconds: Math.max(0, sample.roundSeconds - critical),
  };
}

export interface RoundOverheadSummary {
  /** overheadSeconds ÷ rawTransferSeconds, medians over the timed rounds; the goal is ≤ 1.5. */
  ratio: number | null;
  roundSeconds: number;
  slowestTrainSeconds: number;
  totalTrainSeconds: number;
  criticalTrainSeconds: number;
  overheadSeconds: number;
  rawTransferSeconds: number;
  layout: TrainingLayout;
  rounds: RoundOverhead[];
}

/** Medians over the rounds of each figure; the ratio is the median overhead ÷ the raw transfer time. */
export function summariseRoundOverhead(
  samples: readonly RoundSample[],
  rawTransferSeconds: number,
  layout: TrainingLayout,
): RoundOverheadSummary {
  if (samples.length === 0) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, "samples must hold at least one timed round");
  }
  checkSeconds("rawTransferSeconds", rawTransferSeconds);
  const rounds = samples.map((s) => overheadOfRound(s, layout));
  const of = (key: Exclude<keyof RoundOverhead, "round">) => median(rounds.map((r) => r[key]));
  const overheadSeconds = of("overheadSeconds");
  return {
    ratio: rawTransferSeconds > 0 ? overheadSeconds / rawTransferSeconds : null,
    roundSeconds: of("roundSeconds"),
    slowestTrainSeconds: of("slowestTrainSeconds"),
    totalTrainSeconds: of("totalTrainSeconds"),
    criticalTrainSeconds: of("criticalTrainSeconds"),
    overheadSeconds,
    rawTransferSeconds,
    layout,
    rounds,
  };
}

/** A phase of the round loop starting at `at` milliseconds (performance.now()). */
export interface PhaseEvent {
  round: number;
  phase: string;
  at: number;
}

/**
 * Seconds each phase of a round lasted, from the loop's phase events: a phase ends when the next
 * one starts; the round's last phase ends at `roundEnd` (ms) when given, and is left out otherwise.
 * Events after `roundEnd` (the loop's final DONE carries the last round's number) are ignored.
 */
export function phaseSeconds(
  events: readonly PhaseEvent[],
  round: number,
  roundEnd?: number,
): Record<string, number> {
  const mine = events
    .filter((e) => e.round === round && (roundEnd === undefined || e.at <= roundEnd))
    .sort((a, b) => a.at - b.at);
  const out: Record<string, number> = {};
  for (let i = 0; i < mine.length; i++) {
    const end = i + 1 < mine.length ? mine[i + 1].at : roundEnd;
    if (end === undefined) continue;
    out[mine[i].phase] = (out[mine[i].phase] ?? 0) + (end - mine[i].at) / 1000;
  }
  return out;
}
