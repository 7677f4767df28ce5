import { ErrorCode, FedsimError } from "./errors.js";

/**
 * What a client may tell the coordinator beside its update (docs/PRIVACY.md, "What the server
 * sees"). Under DP or SecAgg the training metrics and the example count stay on the client: loss,
 * accuracy, steps and seconds all track the size and content of its data, which the noise or the
 * masking exists to hide, and nothing would account for them. Without either, the coordinator
 * sees each update anyway, and FedAvg needs the count to weight it.
 */
export function isProtectedRound(round: { dp?: unknown; secagg?: unknown }): boolean {
  return round.dp !== undefined || round.secagg !== undefined;
}

/** The fields a client's report beside its update may hold. */
export interface ClientReport {
  numExamples?: unknown;
  metrics?: unknown;
}

/**
 * Refuses a report that does not match the round: PRIVACY_VIOLATION when a protected round's
 * update carries metrics or an example count, BAD_PAYLOAD when an unprotected one lacks them.
 */
export function checkClientReport(protectedRound: boolean, report: ClientReport): void {
  const present = (["numExamples", "metrics"] as const).filter((field) => report[field] !== undefined);
  if (protectedRound && present.length > 0) {
    throw new FedsimError(
      ErrorCode.PRIVACY_VIOLATION,
      `this round is protected (DP or secure aggregation): send the update without ${present.join(" and ")}`,
    );
  }
  if (!protectedRound && present.length < 2) {
    throw new FedsimError(ErrorCode.BAD_PAYLOAD, "an unprotected update must carry numExamples and metrics");
  }
}
