import { ErrorCode } from "../common/errors.js";
import type { FitOutcome } from "./client-proxy.js";
import type { VirtualTiming } from "./virtual-timing.js";

/** The asynchronous loop on the virtual clock: the timing model and its simulated deadlines. */
export interface AsyncVirtualClock {
  timing: VirtualTiming;
  /** A fit's deadline, in simulated seconds from its request. */
  deadlineSeconds: number;
  /** The simulated clock's reading when the run begins; default 0. */
  startSeconds?: number;
  /** While no idle client is available, the clock steps forward by this much (default 60 s)… */
  idleStepSeconds?: number;
  /** …for at most this long (default one week) before the run stops. */
  maxIdleSeconds?: number;
}

/**
 * Where a real outcome lands on the simulated clock: a dropout the timing foresees is a
 * disconnect at its time; anything past the simulated deadline (or the real safety net firing) is
 * a timeout at the deadline; the rest arrives when the timing says, from the real payload sizes.
 */
export function placeOutcome(
  clock: AsyncVirtualClock,
  outcome: FitOutcome,
  sentAt: number,
  epochs: number,
): { at: number; outcome: FitOutcome } {
  const deadlineAt = sentAt + clock.deadlineSeconds;
  const bytesDown = outcome.bytes?.sent ?? 0;
  const bytesUp = outcome.bytes?.received ?? 0;
  const notReceived = { sent: bytesDown, received: 0 };
  if (!outcome.ok && outcome.reason === "timeout") {
    return { at: deadlineAt, outcome: { ...outcome, bytes: notReceived } };
  }
  const fit = clock.timing.fit({ clientId: outcome.clientId, sentAt, bytesDown, bytesUp, epochs });
  if (fit.at > deadlineAt) {
    return {
      at: deadlineAt,
      outcome: {
        ok: false,
        clientId: outcome.clientId,
        reason: "timeout",
        code: ErrorCode.CLIENT_TIMEOUT,
        message: fit.arrived
          ? `would arrive ${(fit.at - sentAt).toFixed(1)} simulated s after the request, past the ${clock.deadlineSeconds} s deadline`
          : "dropped out after the deadline",
        bytes: notReceived,
      },
    };
  }
  if (!fit.arrived) {
    return {
      at: fit.at,
      outcome: {
        ok: false,
        clientId: outcome.clientId,
        reason: "disconnect",
        code: ErrorCode.CLIENT_DISCONNECTED,
        message: `dropped out in simulated time (${fit.reason})`,
        bytes: notReceived,
      },
    };
  }
  return { at: fit.at, outcome };
}
