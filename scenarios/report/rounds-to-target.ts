/**
 * Rounds to reach a target accuracy, measured as in the FedAvg paper (McMahan et al. 2017, §3):
 * on the best-so-far accuracy curve (running maximum, so a later dip does not undo progress),
 * the round where it first reaches the target, linearly interpolated between the two rounds
 * around the crossing. Fractional results are meant: 3.5 means "halfway between rounds 3 and 4".
 */
import { ErrorCode, FedsimError } from "../../common/errors.js";

/**
 * `accuracies[i]` is the test accuracy after round i + 1; `initial`, when given, is the accuracy
 * of the initial model (round 0), so a target crossed during round 1 interpolates from it.
 * Returns null when the curve never reaches the target. Non-finite accuracies (a diverged
 * round) never count as progress.
 */
export function roundsToTarget(
  accuracies: readonly number[],
  target: number,
  initial?: number,
): number | null {
  return xAtTarget(
    accuracies.map((a, i): [number, number] => [i + 1, a]),
    target,
    initial,
  );
}

/**
 * The same measure along any increasing x (rounds, or simulated hours on the virtual clock):
 * `points` are (x, accuracy) after each round, `initial` the initial model's accuracy at x = 0.
 * The crossing is interpolated linearly in x between the points around it.
 */
export function xAtTarget(
  points: readonly (readonly [number, number])[],
  target: number,
  initial?: number,
): number | null {
  if (!Number.isFinite(target)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `target must be a finite number, got ${target}`);
  }
  const start = initial !== undefined && Number.isFinite(initial) ? initial : undefined;
  if (start !== undefined && start >= target) return 0;
  // (x, best-so-far) of the point before the current one; without an initial value there is
  // nothing before the first point to interpolate from.
  let previousX = 0;
  let best = start ?? Number.NEGATIVE_INFINITY;
  for (const [x, accuracy] of points) {
    const value = Number.isFinite(accuracy) ? accuracy : Number.NEGATIVE_INFINITY;
    if (value >= target) {
      if (best === Number.NEGATIVE_INFINITY) return x;
      return previousX + ((x - previousX) * (target - best)) / (value - best);
    }
    best = Math.max(best, value);
    previousX = x;
  }
  return null;
}

/**
 * The bound of an expectation such as `finalAccuracy 0.9290 ≥ 0.9`, read back from its detail
 * text (the summary keeps only name, passed and detail); undefined for any other expectation.
 */
export function expectationBound(
  expectation: { name: string; detail: string },
  name: string,
  relation: "≥" | "≤",
): number | undefined {
  if (expectation.name !== name) return undefined;
  const match = new RegExp(`${relation}\\s*(-?\\d+(?:\\.\\d+)?(?:e[-+]?\\d+)?)\\s*$`, "i").exec(
    expectation.detail,
  );
  if (!match) return undefined;
  const value = Number(match[1]);
  return Number.isFinite(value) ? value : undefined;
}

/** The accuracy a run was expected to reach (its `finalAccuracy ≥` bound), if any. */
export function accuracyTargetOf(expectation: { name: string; detail: string }): number | undefined {
  return expectationBound(expectation, "finalAccuracy", "≥");
}

export interface TargetChoice {
  target: number;
  /** How the target was chosen, in words for the table and the page. */
  source: string;
}

interface RunForTarget {
  final: { accuracy: number };
  expectations: readonly { name: string; detail: string }[];
}

/**
 * The default target when none is given: the lowest `finalAccuracy ≥` bound among the runs'
 * expectations (the bar every run was asked to clear), else 0.9 × the best final accuracy
 * (rounded to 4 decimals), so the slowest runs still have a reachable bar.
 */
export function defaultTarget(runs: readonly RunForTarget[]): TargetChoice {
  const bounds = runs.flatMap((r) =>
    r.expectations.map(accuracyTargetOf).filter((t): t is number => t !== undefined),
  );
  if (bounds.length > 0) {
    return { target: Math.min(...bounds), source: "lowest finalAccuracy expectation of the runs" };
  }
  const finals = runs.map((r) => r.final.accuracy).filter(Number.isFinite);
  if (finals.length === 0) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, "no run has a final accuracy: give --target");
  }
  const target = Math.round(0.9 * Math.max(...finals) * 10_000) / 10_000;
  return { target, source: "0.9 × the best final accuracy" };
}
