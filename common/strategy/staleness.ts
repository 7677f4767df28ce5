import { z } from "zod";
import { ErrorCode, FedsimError } from "../errors.js";
import { requireNonNegativeFinite, requirePositiveFinite } from "./validate.js";

/**
 * Staleness weights for asynchronous aggregation. τ is how many server model versions were
 * published between the version a client trained on and the one its update meets.
 *
 * The three families of FedAsync (Xie, Koyejo and Gupta 2019, §5), written in τ = t − τ_paper:
 *   constant         s(τ) = 1
 *   polynomial(a)    s(τ) = (1 + τ)^(−a)
 *   hinge(a, b)      s(τ) = 1 when τ ≤ b, else 1 / (a·(τ − b) + 1)
 * FedBuff (Nguyen et al. 2022) weights by 1/√(1 + τ), which is polynomial with a = ½.
 */
export type StalenessSpec =
  | { kind: "constant" }
  | { kind: "polynomial"; a: number }
  | { kind: "hinge"; a: number; b: number };

export const STALENESS_KINDS = ["constant", "polynomial", "hinge"] as const;

/** The same specs as a scenario states them (`strategy.staleness`). */
export const stalenessSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("constant") }).strict(),
  z.object({ kind: z.literal("polynomial"), a: z.number().positive() }).strict(),
  z.object({ kind: z.literal("hinge"), a: z.number().positive(), b: z.number().nonnegative() }).strict(),
]);

/** FedBuff's default: 1/√(1 + τ). */
export const FEDBUFF_STALENESS: StalenessSpec = { kind: "polynomial", a: 0.5 };

/** Throws INVALID_CONFIG naming the option (`field.a`, `field.b`) when a spec is out of range. */
export function validateStaleness(spec: StalenessSpec, field = "staleness"): void {
  switch (spec.kind) {
    case "constant":
      return;
    case "polynomial":
      requirePositiveFinite(`${field}.a`, spec.a);
      return;
    case "hinge":
      requirePositiveFinite(`${field}.a`, spec.a);
      requireNonNegativeFinite(`${field}.b`, spec.b);
      return;
    default:
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `${field}.kind must be one of ${STALENESS_KINDS.join(", ")}, got ${String((spec as { kind?: unknown }).kind)}`,
      );
  }
}

/** s(τ) for a valid spec; τ must be an integer ≥ 0 (a version difference). */
export function stalenessWeight(spec: StalenessSpec, staleness: number): number {
  if (!Number.isSafeInteger(staleness) || staleness < 0) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `staleness must be an integer ≥ 0, got ${staleness}`);
  }
  switch (spec.kind) {
    case "constant":
      return 1;
    case "polynomial":
      return (1 + staleness) ** -spec.a;
    case "hinge":
      return staleness <= spec.b ? 1 : 1 / (spec.a * (staleness - spec.b) + 1);
  }
}

/** A readable form for logs and reports: "1/(1+τ)^0.5", "hinge(a=10, b=4)". */
export function describeStaleness(spec: StalenessSpec): string {
  switch (spec.kind) {
    case "constant":
      return "constant";
    case "polynomial":
      return `(1+τ)^-${spec.a}`;
    case "hinge":
      return `hinge(a=${spec.a}, b=${spec.b})`;
  }
}
