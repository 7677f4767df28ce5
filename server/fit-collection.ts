import { isProtectedRound } from "../common/disclosure.js";
import { type Distribution, distributionOf } from "../common/distribution.js";
import { l2Norm } from "../common/dp/clip.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import type { ClientUpdate } from "../common/strategy/strategy.js";
import {
  type ClientProxy,
  type FitOutcome,
  type FitRequest,
  type FitSuccess,
  fitOrInternalError,
} from "./client-proxy.js";
import type { ClientTiming } from "./round-record.js";

export interface CollectedFit {
  outcome: FitOutcome;
  timing: ClientTiming;
}

/**
 * Sends the fit request to every training client and gathers the outcomes on the real clock
 * (server/virtual-round.ts does the same in simulated time). Once `target` successes are in, the
 * clients still training are cancelled (over-selection). A proxy that throws is an "error"
 * outcome, never a failed round.
 */
export function collectFits(options: {
  round: number;
  request: FitRequest;
  training: readonly ClientProxy[];
  target: number;
  deadlineMs: number;
  /** performance.now() when the round began, for the timings' start offsets. */
  roundStart: number;
  onOutcome?: (outcome: FitOutcome) => void;
}): Promise<CollectedFit[]> {
  const { round, request, training, target, roundStart } = options;
  const pending = new Set(training);
  let succeeded = 0;
  return Promise.all(
    training.map((client) => {
      const sentAt = performance.now();
      return fitOrInternalError(client, request, options.deadlineMs).then((outcome) => {
        pending.delete(client);
        if (outcome.ok) succeeded++;
        options.onOutcome?.(outcome);
        if (outcome.ok && succeeded === target && training.length > target) {
          for (const slow of pending) slow.cancel?.(round, "over-selection: enough clients finished");
        }
        const timing: ClientTiming = {
          clientId: client.id,
          startSeconds: (sentAt - roundStart) / 1000,
          seconds: (performance.now() - sentAt) / 1000,
          ...(outcome.ok && outcome.metrics ? { trainSeconds: outcome.metrics.seconds } : {}),
          outcome: outcome.ok ? "ok" : outcome.reason,
        };
        return { outcome, timing };
      });
    }),
  );
}

/** A success as a strategy sees it; only unprotected rounds have individual updates with their reports. */
export function toClientUpdate(s: FitSuccess): ClientUpdate {
  if (s.numExamples === undefined || s.metrics === undefined) {
    throw new FedsimError(
      ErrorCode.INTERNAL,
      `update from ${s.clientId} has no example count or metrics: a protected round must aggregate a sum`,
    );
  }
  return {
    clientId: s.clientId,
    numExamples: s.numExamples,
    delta: s.delta,
    metrics: {
      ...s.metrics.custom,
      loss: s.metrics.loss,
      accuracy: s.metrics.accuracy,
      epochsCompleted: s.metrics.epochsCompleted,
    },
  };
}

/**
 * The mean of the clients' reported training losses, when every participant reported one. Under
 * DP or SecAgg none do (common/disclosure.ts), and the record has no trainLoss.
 */
/**
 * The L2 norms of the round's accepted updates, for reports. Only where the coordinator sees each
 * update (plain and envelope rounds): under DP and SecAgg it learns no individual norm.
 */
export function updateNormsOf(
  successes: readonly FitSuccess[],
  request: Pick<FitRequest, "dp" | "secagg">,
): Distribution | undefined {
  if (isProtectedRound(request)) return undefined;
  return distributionOf(successes.filter((x) => x.delta.length > 0).map((x) => l2Norm(x.delta)));
}

export function meanTrainLoss(successes: readonly FitSuccess[]): number | undefined {
  if (successes.length === 0 || successes.some((x) => x.metrics === undefined)) return undefined;
  return successes.reduce((s, x) => s + (x.metrics?.loss ?? 0), 0) / successes.length;
}
