import type { EdgeOutcome, EdgeRoundWeights } from "../../common/edge-protocol.js";
import { ErrorCode } from "../../common/errors.js";
import type { FailureReason } from "../../common/strategy/strategy.js";
import { bytesToFloat32, float32BytesView } from "../../common/weights.js";
import type { FitOutcome, FitRequest } from "../client-proxy.js";

/** The weights (and frozen tensors) of a fit request, as an edge fetches them over its link. */
export function edgeWeightsOf(request: FitRequest): EdgeRoundWeights {
  const { weights, frozen } = request;
  return {
    weights: { specs: weights.specs, data: float32BytesView(weights.values) },
    ...(frozen ? { frozen: { specs: frozen.specs, data: float32BytesView(frozen.values) } } : {}),
  };
}

/**
 * An edge's report of one client's fit, as the loops take outcomes. `forwardedValues` is the
 * update's expected length when the edge forwards updates (null when it keeps them for a sum): a
 * forwarded update of any other length is the edge's fault and a BAD_SHAPE failure, never a crash.
 */
export function fitOutcomeFromEdge(
  edgeId: string,
  outcome: EdgeOutcome,
  forwardedValues: number | null,
): FitOutcome {
  if (!outcome.ok) {
    return {
      ...edgeFailure(outcome.clientId, outcome.reason, outcome.code, outcome.message),
      ...(outcome.bytes ? { bytes: outcome.bytes } : {}),
    };
  }
  let delta: Float32Array = new Float32Array(0);
  if (forwardedValues !== null) {
    if (outcome.delta === undefined || outcome.delta.byteLength !== forwardedValues * 4) {
      return edgeFailure(
        outcome.clientId,
        "rejected",
        ErrorCode.BAD_SHAPE,
        `edge ${edgeId} forwarded no update of ${forwardedValues} values`,
      );
    }
    delta = bytesToFloat32(outcome.delta);
  }
  return {
    ok: true,
    clientId: outcome.clientId,
    delta,
    ...(outcome.numExamples !== undefined ? { numExamples: outcome.numExamples } : {}),
    ...(outcome.metrics ? { metrics: outcome.metrics } : {}),
    ...(outcome.clippedBit !== undefined ? { clippedBit: outcome.clippedBit } : {}),
    bytes: outcome.bytes,
  };
}

export function edgeFailure(
  clientId: string,
  reason: FailureReason,
  code: string,
  message: string,
): FitOutcome {
  return { ok: false, clientId, reason, code, message };
}
