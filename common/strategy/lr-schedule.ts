import { z } from "zod";
import { ErrorCode, FedsimError } from "../errors.js";

/**
 * Client learning-rate schedules over rounds (the server tells each round's clients their rate).
 * Round numbers are 1-based; round 1 always trains at the base rate.
 */
export const learningRateScheduleSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("constant") }).strict(),
  /** Multiply by `factor` every `every` rounds (step decay). */
  z
    .object({ kind: z.literal("step"), every: z.number().int().positive(), factor: z.number().gt(0).max(1) })
    .strict(),
  /** Multiply by `decay` each round. */
  z.object({ kind: z.literal("exponential"), decay: z.number().gt(0).max(1) }).strict(),
  /** Half a cosine from the base rate down to `minLearningRate` at the last round. */
  z.object({ kind: z.literal("cosine"), minLearningRate: z.number().nonnegative().default(0) }).strict(),
]);

export type LearningRateSchedule = z.infer<typeof learningRateScheduleSchema>;

export function learningRateAt(
  schedule: LearningRateSchedule,
  base: number,
  round: number,
  totalRounds: number,
): number {
  if (!(base > 0) || !Number.isInteger(round) || round < 1) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `learning rate schedule needs base > 0 and round ≥ 1, got ${base} and ${round}`,
    );
  }
  const steps = round - 1;
  switch (schedule.kind) {
    case "constant":
      return base;
    case "step":
      return base * schedule.factor ** Math.floor(steps / schedule.every);
    case "exponential":
      return base * schedule.decay ** steps;
    case "cosine": {
      const span = Math.max(1, totalRounds - 1);
      const progress = Math.min(1, steps / span);
      const min = Math.min(schedule.minLearningRate, base);
      return min + ((base - min) * (1 + Math.cos(Math.PI * progress))) / 2;
    }
  }
}
