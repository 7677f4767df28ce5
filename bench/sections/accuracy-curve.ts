import { ErrorCode, FedsimError } from "../../common/errors.js";

/**
 * Accuracy against wall time, for the time-to-accuracy section: one point per round, at the
 * time the round ended (seconds since training began) with the test accuracy after it.
 */
export interface CurvePoint {
  round: number;
  seconds: number;
  accuracy: number;
}

/**
 * A curve from per-round durations (what fedsim's round records hold). `startupSeconds` is taken
 * off the first round: time it spent waiting for clients to start, which is not training.
 */
export function curveFromDurations(
  rounds: readonly { round: number; seconds: number; accuracy: number }[],
  startupSeconds = 0,
): CurvePoint[] {
  if (!(startupSeconds >= 0)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `startupSeconds must be ≥ 0, got ${startupSeconds}`);
  }
  let elapsed = 0;
  return rounds.map((r, i) => {
    if (!(r.seconds >= 0)) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `round ${r.round}: seconds must be ≥ 0, got ${r.seconds}`,
      );
    }
    elapsed += i === 0 ? Math.max(0, r.seconds - startupSeconds) : r.seconds;
    return { round: r.round, seconds: elapsed, accuracy: r.accuracy };
  });
}

/** The first round whose accuracy reaches `target`, and when it ended; null if none does. */
export function timeToTarget(curve: readonly CurvePoint[], target: number): CurvePoint | null {
  return curve.find((p) => p.accuracy >= target) ?? null;
}

export interface TimeToAccuracyFigures {
  /** fedsimSeconds ÷ pytorchSeconds; 1 = as fast, goal ≤ 2. Null when either never reached the target. */
  ratio: number | null;
  fedsimSeconds: number | null;
  pytorchSeconds: number | null;
  target: number;
  fedsimRounds: number | null;
  pytorchRounds: number | null;
}

export function compareTimeToAccuracy(
  fedsim: readonly CurvePoint[],
  pytorch: readonly CurvePoint[] | null,
  target: number,
): TimeToAccuracyFigures {
  if (!(target > 0 && target <= 1)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `target must be an accuracy in (0, 1], got ${target}`);
  }
  const ours = timeToTarget(fedsim, target);
  const theirs = pytorch === null ? null : timeToTarget(pytorch, target);
  return {
    ratio: ours !== null && theirs !== null && theirs.seconds > 0 ? ours.seconds / theirs.seconds : null,
    fedsimSeconds: ours?.seconds ?? null,
    pytorchSeconds: theirs?.seconds ?? null,
    target,
    fedsimRounds: ours?.round ?? null,
    pytorchRounds: theirs?.round ?? null,
  };
}
