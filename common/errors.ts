/**
 * Every refusal in fedsim carries one of these codes, on the wire (in acks) and in thrown errors,
 * so that callers branch on a code rather than on message text.
 */
export const ErrorCode = {
  BAD_PAYLOAD: "BAD_PAYLOAD",
  BAD_SHAPE: "BAD_SHAPE",
  NON_FINITE: "NON_FINITE",
  /** numExamples above what the client declared at hello, or above the coordinator's cap. */
  EXAMPLES_OUT_OF_RANGE: "EXAMPLES_OUT_OF_RANGE",
  /** An update whose L2 norm is above the coordinator's maxUpdateNorm. */
  NORM_TOO_LARGE: "NORM_TOO_LARGE",
  /** The aggregate itself is unusable (not finite; SecAgg total weight out of range): the round keeps the model. */
  BAD_AGGREGATE: "BAD_AGGREGATE",
  PAYLOAD_TOO_LARGE: "PAYLOAD_TOO_LARGE",
  STALE_ROUND: "STALE_ROUND",
  REPLAY: "REPLAY",
  UNKNOWN_CLIENT: "UNKNOWN_CLIENT",
  UNAUTHORIZED: "UNAUTHORIZED",
  BAD_SIGNATURE: "BAD_SIGNATURE",
  DECRYPT_FAILED: "DECRYPT_FAILED",
  PROTOCOL_VERSION: "PROTOCOL_VERSION",
  NOT_SAMPLED: "NOT_SAMPLED",
  DUPLICATE: "DUPLICATE",
  CLIENT_TIMEOUT: "CLIENT_TIMEOUT",
  /** Over-selection: enough other clients finished first, so this one's fit was called off. */
  CANCELLED: "CANCELLED",
  CLIENT_DISCONNECTED: "CLIENT_DISCONNECTED",
  /** A client node used up its reconnect attempts (`--max-retries`) without reaching the coordinator. */
  COORDINATOR_UNREACHABLE: "COORDINATOR_UNREACHABLE",
  /** The coordinator's TLS certificate failed verification (no --ca, a wrong CA, a name it does not cover): retrying cannot help. */
  TLS_UNTRUSTED: "TLS_UNTRUSTED",
  /** A pool offered its cores to a run id that is not the one the coordinator runs. */
  WRONG_RUN: "WRONG_RUN",
  TOO_FEW_CLIENTS: "TOO_FEW_CLIENTS",
  /** Scale-out: the edge holding a client went away (its link closed) before the client's part of the round was in. */
  EDGE_LOST: "EDGE_LOST",
  /** Scale-out: no edge took a sampled client's request (Redis unreachable, or the client left every edge). */
  EDGE_UNREACHABLE: "EDGE_UNREACHABLE",
  /** Scale-out: Redis did not answer within the start-up wait (`--redis-wait`): nothing can be joined without it. */
  REDIS_UNREACHABLE: "REDIS_UNREACHABLE",
  /** A pool session asked to host more virtual clients than the coordinator allows one session. */
  TOO_MANY_CLIENTS: "TOO_MANY_CLIENTS",
  SECAGG_THRESHOLD: "SECAGG_THRESHOLD",
  SECAGG_PROTOCOL: "SECAGG_PROTOCOL",
  INCOMPATIBLE_OPTIONS: "INCOMPATIBLE_OPTIONS",
  INVALID_CONFIG: "INVALID_CONFIG",
  INVALID_SCENARIO: "INVALID_SCENARIO",
  /** A run finished but missed what its scenario's `expect` block asked for. */
  EXPECTATION_FAILED: "EXPECTATION_FAILED",
  /** The port to listen on is taken (or not allowed to this user). */
  PORT_IN_USE: "PORT_IN_USE",
  BACKEND_UNAVAILABLE: "BACKEND_UNAVAILABLE",
  DATA_NOT_FOUND: "DATA_NOT_FOUND",
  BAD_DATA: "BAD_DATA",
  PRIVACY_BUDGET: "PRIVACY_BUDGET",
  /** A protected update (DP or SecAgg) carried metrics or an example count the mode keeps from the coordinator. */
  PRIVACY_VIOLATION: "PRIVACY_VIOLATION",
  CHECKPOINT: "CHECKPOINT",
  INTERNAL: "INTERNAL",
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class FedsimError extends Error {
  readonly code: ErrorCode;
  /** One line per problem (e.g. per invalid field), printed by the CLI under the message. */
  readonly details: readonly string[];

  constructor(code: ErrorCode, message: string, details: readonly string[] = []) {
    super(message);
    this.name = "FedsimError";
    this.code = code;
    this.details = details;
  }
}

export function isFedsimError(err: unknown): err is FedsimError {
  return err instanceof FedsimError;
}

/** Short text for logs from any thrown value. */
export function describeError(err: unknown): string {
  if (err instanceof FedsimError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return err.message;
  return String(err);
}
