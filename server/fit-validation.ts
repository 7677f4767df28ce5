import { sealedBytes } from "../common/crypto/envelope.js";
import { checkClientReport, isProtectedRound } from "../common/disclosure.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import {
  type EvaluateReply,
  evaluateReplySchema,
  type FitErrorMessage,
  type FitResultMessage,
  type PlainUpdate,
  plainUpdateSchema,
  safeParseUntrusted,
} from "../common/protocol.js";
import { decodePlainUpdate } from "../common/update-codec.js";
import { validateWeights } from "../common/weights.js";
import { assertExamplesInRange, assertNormInRange, type ClientLimits } from "./client-limits.js";
import type { FitRequest, FitSuccess } from "./client-proxy.js";

/**
 * The checks every fit reply goes through, whichever connection it came on (a client's own
 * socket or a pool session): docs/PROTOCOL.md §5 and §6.
 */

/** How a finished request ended; decides between STALE_ROUND and REPLAY for late messages. */
export type Finished = "accepted" | "refused" | "expired";

export interface Refusal {
  ok: false;
  code: ErrorCode;
  message: string;
}

export function refuse(code: ErrorCode, message: string): Refusal {
  return { ok: false, code, message };
}

/** The refusal for a reply whose nonce is not the pending one (the table in PROTOCOL.md §5). */
export function lateReplyRefusal(
  previous: Finished | undefined,
  message: { round: number; nonce: string },
  currentRound: number,
): Refusal {
  if (previous === "accepted") return refuse(ErrorCode.REPLAY, "this update was already received");
  if (previous === "expired" || message.round < currentRound) {
    return refuse(ErrorCode.STALE_ROUND, `round ${message.round} is over (current round ${currentRound})`);
  }
  if (previous === "refused") return refuse(ErrorCode.DUPLICATE, "this request was already answered");
  return refuse(ErrorCode.NOT_SAMPLED, `no fit request ${message.nonce} is pending for this client`);
}

/** What one client's update may claim or weigh (server/client-limits.ts). */
export interface FitBounds {
  limits: ClientLimits;
  /** The training-set size the client declared at hello, if it did. */
  declaredExamples: number | undefined;
}

/**
 * Unwraps and validates the update a pending request asked for; throws a FedsimError with the
 * code to refuse it with. The delta keeps the message's receive buffer (no copy): ws assembles
 * each message into a fresh buffer and never reuses it.
 */
export function acceptFit(
  clientId: string,
  message: FitResultMessage,
  request: FitRequest,
  bounds: FitBounds,
  opened?: PlainUpdate,
): Omit<FitSuccess, "bytes"> {
  if (request.secagg) return acceptMasked(clientId, message, request);
  const update = unwrap(message, request, opened);
  checkClientReport(isProtectedRound(request), update);
  if (update.numExamples !== undefined) {
    assertExamplesInRange(update.numExamples, bounds.declaredExamples, bounds.limits);
  }
  const delta = validateWeights(request.weights.specs, update.delta.specs, update.delta.data);
  assertNormInRange(delta, bounds.limits);
  return {
    ok: true,
    clientId,
    ...(update.numExamples !== undefined ? { numExamples: update.numExamples } : {}),
    delta,
    ...(update.metrics !== undefined ? { metrics: update.metrics } : {}),
    ...(update.clippedBit !== undefined ? { clippedBit: update.clippedBit } : {}),
  };
}

/** Under SecAgg the update is a masked vector of exactly n+1 uint32 (the weight rides last). */
function acceptMasked(
  clientId: string,
  message: FitResultMessage,
  request: FitRequest,
): Omit<FitSuccess, "bytes"> {
  const sa = message.secagg;
  if (!sa)
    throw new FedsimError(ErrorCode.BAD_PAYLOAD, "this round uses secure aggregation: send secagg.masked");
  const expected = (request.weights.values.length + 1) * 4;
  if (sa.masked.masked.byteLength !== expected) {
    throw new FedsimError(
      ErrorCode.BAD_SHAPE,
      `masked vector is ${sa.masked.masked.byteLength} bytes, expected ${expected}`,
    );
  }
  if (sa.masked.clientId !== clientId || sa.masked.round !== request.round) {
    throw new FedsimError(ErrorCode.SECAGG_PROTOCOL, "masked input names another client or round");
  }
  checkClientReport(true, sa);
  return {
    ok: true,
    clientId,
    delta: new Float32Array(0),
    masked: {
      round: sa.masked.round,
      clientId: sa.masked.clientId,
      masked: new Uint8Array(sa.masked.masked),
    },
  };
}

/**
 * An envelope round's sealed update, opened (on worker threads, hence async): acceptFit then takes
 * it as `opened`. Throws the code to refuse the reply with.
 */
export async function openSealedUpdate(
  message: FitResultMessage,
  request: FitRequest,
  publicKey?: Uint8Array,
): Promise<PlainUpdate> {
  const { envelope, signer } = sealedParts(message, request, publicKey);
  if (!request.envelope?.open)
    throw new FedsimError(ErrorCode.INTERNAL, "this request cannot open envelopes");
  return decodePlainUpdate(await request.envelope.open(envelope, signer));
}

/**
 * On an edge: the same first checks as openSealedUpdate, then the sealed update goes to the
 * coordinator, which opens it (server/edges/edge-sealed.ts). Resolves once it was accepted there.
 */
export async function relaySealedUpdate(
  clientId: string,
  message: FitResultMessage,
  request: FitRequest,
  publicKey: Uint8Array | undefined,
  declaredExamples: number | undefined,
): Promise<void> {
  const { envelope, signer } = sealedParts(message, request, publicKey);
  if (!request.envelope?.relay)
    throw new FedsimError(ErrorCode.INTERNAL, "this request cannot relay envelopes");
  await request.envelope.relay({ clientId, envelope, signerPublicKey: signer, declaredExamples });
}

function sealedParts(message: FitResultMessage, request: FitRequest, publicKey: Uint8Array | undefined) {
  if (!request.envelope) throw new FedsimError(ErrorCode.INTERNAL, "this request asked for no envelope");
  if (!message.envelope)
    throw new FedsimError(ErrorCode.BAD_PAYLOAD, "this round requires a sealed envelope");
  if (!publicKey) {
    throw new FedsimError(ErrorCode.UNAUTHORIZED, "sealed updates need a client identity (a signing key)");
  }
  return { envelope: message.envelope, signer: publicKey };
}

function unwrap(message: FitResultMessage, request: FitRequest, opened?: PlainUpdate): PlainUpdate {
  if (request.envelope) {
    if (!opened) {
      // Pool sessions never get envelope requests; a client's own socket opens them first.
      throw new FedsimError(ErrorCode.INTERNAL, "an envelope round's update must be opened first");
    }
    return opened;
  }
  if (!message.update) throw new FedsimError(ErrorCode.BAD_PAYLOAD, "fitResult has no update");
  return plainUpdateSchema.parse(message.update);
}

/** A client's fitError as a failure record: its code only if it is one of ours. */
export function reportedFailure(message: FitErrorMessage): { code: string; message: string } {
  const known = (Object.values(ErrorCode) as string[]).includes(message.code);
  const prefix = known ? "" : `(code ${JSON.stringify(message.code)}) `;
  return {
    code: known ? message.code : ErrorCode.INTERNAL,
    message: `client reported: ${prefix}${message.message.slice(0, 200)}`,
  };
}

/** The payload bytes a reply carried: the update's tensor bytes, ciphertext or masked vector. */
export function replyBytes(message: FitResultMessage): number {
  if (message.secagg) return message.secagg.masked.masked.byteLength;
  if (message.envelope) return sealedBytes(message.envelope);
  return message.update?.delta.data.byteLength ?? 0;
}

/** A client's answer to an evaluation request, or BAD_PAYLOAD naming its refusal. */
export function readEvaluateReply(raw: unknown, limits: ClientLimits): EvaluateReply {
  const parsed = safeParseUntrusted(evaluateReplySchema, raw);
  if (!parsed.success) {
    const refusal = raw as { ok?: unknown; code?: unknown; message?: unknown } | null;
    const detail =
      refusal?.ok === false
        ? `${String(refusal.code)}: ${String(refusal.message).slice(0, 200)}`
        : "malformed reply";
    throw new FedsimError(ErrorCode.BAD_PAYLOAD, `evaluation refused: ${detail}`);
  }
  const { ok: _ok, ...reply } = parsed.data;
  // Federated evaluation weights each answer by its count; the held-out set is not the training
  // set the hello declared, so only the cap applies.
  assertExamplesInRange(reply.numExamples, undefined, limits);
  return reply;
}
