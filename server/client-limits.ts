import { l2Norm } from "../common/dp/clip.js";
import { ErrorCode, FedsimError } from "../common/errors.js";

/**
 * What one client's update may claim or weigh before the coordinator refuses it. FedAvg weights
 * each update by the example count its client reports, and a finite update can still be near
 * FLT_MAX: without these bounds a single client could take the whole weight of a round, or push the
 * global model to ±Inf in two rounds. Only updates the coordinator sees one by one are checked:
 * under secure aggregation it sees neither counts nor norms (docs/ROBUSTNESS.md).
 */
export interface ClientLimits {
  /** Largest numExamples any client may report (in fit results and federated evaluation). */
  maxExamplesPerClient: number;
  /** Largest L2 norm of an update's delta. */
  maxUpdateNorm: number;
}

/**
 * Far above the example count of any one client of the datasets fedsim ships, and far below what
 * would let one client outweigh a federation of ordinary ones by orders of magnitude.
 */
export const DEFAULT_MAX_EXAMPLES_PER_CLIENT = 1_000_000;
/**
 * Orders of magnitude above the delta of a training step of any model here (weights are O(1)), and
 * orders of magnitude below float32's overflow, so no sequence of accepted updates reaches ±Inf.
 */
export const DEFAULT_MAX_UPDATE_NORM = 1e6;

/** The limits with defaults filled in; refuses values that are not positive (INVALID_CONFIG). */
export function resolveClientLimits(limits: Partial<ClientLimits> = {}): ClientLimits {
  const resolved = {
    maxExamplesPerClient: limits.maxExamplesPerClient ?? DEFAULT_MAX_EXAMPLES_PER_CLIENT,
    maxUpdateNorm: limits.maxUpdateNorm ?? DEFAULT_MAX_UPDATE_NORM,
  };
  if (!Number.isSafeInteger(resolved.maxExamplesPerClient) || resolved.maxExamplesPerClient < 1) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `maxExamplesPerClient must be an integer ≥ 1, got ${limits.maxExamplesPerClient}`,
    );
  }
  if (!(Number.isFinite(resolved.maxUpdateNorm) && resolved.maxUpdateNorm > 0)) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `maxUpdateNorm must be a finite number > 0, got ${limits.maxUpdateNorm}`,
    );
  }
  return resolved;
}

/**
 * Refuses a reported example count above the cap, or above what the client declared at hello
 * (a declaration only ever lowers the bound: the client chose it).
 */
export function assertExamplesInRange(
  numExamples: number,
  declared: number | undefined,
  limits: ClientLimits,
): void {
  if (numExamples > limits.maxExamplesPerClient) {
    throw new FedsimError(
      ErrorCode.EXAMPLES_OUT_OF_RANGE,
      `numExamples ${numExamples} is above the coordinator's maxExamplesPerClient (${limits.maxExamplesPerClient})`,
    );
  }
  if (declared !== undefined && numExamples > declared) {
    throw new FedsimError(
      ErrorCode.EXAMPLES_OUT_OF_RANGE,
      `numExamples ${numExamples} is above the ${declared} examples this client declared at hello`,
    );
  }
}

/** Refuses a delta whose L2 norm is above maxUpdateNorm (the values are already known finite). */
export function assertNormInRange(delta: Float32Array, limits: ClientLimits): void {
  const norm = l2Norm(delta);
  if (norm > limits.maxUpdateNorm) {
    throw new FedsimError(
      ErrorCode.NORM_TOO_LARGE,
      `update norm ${norm.toPrecision(4)} is above the coordinator's maxUpdateNorm (${limits.maxUpdateNorm})`,
    );
  }
}
