import { describeError, ErrorCode } from "../common/errors.js";
import type { ClientProxy, FitFailure, FitOutcome, FitRequest } from "./client-proxy.js";
import type { ClientTiming } from "./round-record.js";
import type { VirtualTiming } from "./virtual-timing.js";

/**
 * A synchronous round on the virtual clock. The sampled clients still train for real and in
 * parallel, but nobody sleeps: each reply is placed at the simulated time the VirtualTiming
 * gives it (from the device profile and the real payload sizes), and the round is decided in
 * simulated-time order. Deadlines, dropouts and over-selection therefore follow the simulated
 * clock, and the result does not depend on which real fit happened to finish first.
 */
export interface VirtualClock {
  timing: VirtualTiming;
  /** A round's deadline, in simulated seconds from when it sends its requests. */
  deadlineSeconds: number;
  /** The simulated clock's reading when the run begins; default 0. */
  startSeconds?: number;
  /**
   * Simulated seconds the server spends after a round (aggregation, evaluation, checkpoint)
   * before the next one samples; default 0, so rounds follow each other back to back.
   */
  serverSeconds?: number;
  /**
   * When no sampled-for client is available, the simulated clock steps forward by this much
   * until one is (default 60 s), for at most `maxIdleSeconds` (default one week).
   */
  idleStepSeconds?: number;
  maxIdleSeconds?: number;
  /**
   * The run's simulated-time budget: the round loop starts no round, and the asynchronous loop
   * takes no event, past this many simulated seconds since the run began.
   */
  budgetSeconds?: number;
}

/** One sampled client's fit, as the virtual clock decided it. */
export interface VirtualFit {
  outcome: FitOutcome;
  /** Simulated seconds at which the request left and the outcome reached the coordinator. */
  sentAt: number;
  arrivedAt: number;
  /** Wall-clock offsets (seconds) from the round's start to the real request, and its real duration. */
  wallStart: number;
  wallSeconds: number;
}

export interface VirtualCollection {
  /** Every training client's fit, in simulated arrival order (ties by client id). */
  fits: VirtualFit[];
  /** Simulated seconds at which the round stopped collecting. */
  end: number;
}

/** A decided fit as the round record keeps it: wall-clock timings plus the simulated ones. */
export function virtualTiming(fit: VirtualFit): ClientTiming {
  const { outcome } = fit;
  return {
    clientId: outcome.clientId,
    startSeconds: fit.wallStart,
    seconds: fit.wallSeconds,
    ...(outcome.ok && outcome.metrics ? { trainSeconds: outcome.metrics.seconds } : {}),
    outcome: outcome.ok ? "ok" : outcome.reason,
    simulatedSentAt: fit.sentAt,
    simulatedArrivedAt: fit.arrivedAt,
  };
}

export interface VirtualCollectInput {
  clock: VirtualClock;
  request: FitRequest;
  training: readonly ClientProxy[];
  /** Successes to aggregate; once that many have arrived (in simulated time), the rest are cancelled. */
  target: number;
  /** Simulated seconds at which the round sends its requests. */
  sentAt: number;
  /** The wall-clock safety net for each real fit. */
  wallDeadlineMs: number;
  /** performance.now() at the round's start, for the wall-clock offsets. */
  wallStart: number;
}

/**
 * Sends the request to the clients that can still arrive before the simulated deadline, lets
 * them train for real, then decides the round in simulated time. A client whose earliest
 * possible arrival is already past the deadline does not train at all: it times out at the
 * deadline, as it would have.
 */
export async function collectVirtualFits(input: VirtualCollectInput): Promise<VirtualCollection> {
  const { clock, request, sentAt } = input;
  const deadlineAt = sentAt + clock.deadlineSeconds;
  const epochs = request.config.epochs;
  // Frozen tensors go only to connections that lack them, so the trainable weights are the floor.
  const bytesDownFloor = request.weights.values.byteLength;
  const placed: VirtualFit[] = [];
  const trainers: ClientProxy[] = [];
  for (const client of input.training) {
    const earliest = clock.timing.earliestArrival({
      clientId: client.id,
      sentAt,
      bytesDown: bytesDownFloor,
      epochs,
    });
    if (earliest > deadlineAt) {
      placed.push({
        outcome: failure(
          client.id,
          "timeout",
          ErrorCode.CLIENT_TIMEOUT,
          lateMessage(clock, earliest - sentAt),
        ),
        sentAt,
        arrivedAt: deadlineAt,
        wallStart: (performance.now() - input.wallStart) / 1000,
        wallSeconds: 0,
      });
    } else {
      trainers.push(client);
    }
  }
  const real = await Promise.all(
    trainers.map(async (client) => {
      const wallSent = performance.now();
      const outcome = await client
        .fit(request, input.wallDeadlineMs)
        .catch((err): FitOutcome => failure(client.id, "error", ErrorCode.INTERNAL, describeError(err)));
      return { outcome, wallSent, wallEnded: performance.now() };
    }),
  );
  for (const { outcome, wallSent, wallEnded } of real) {
    const { at, outcome: simulated } = placeOnClock(
      clock,
      outcome,
      sentAt,
      deadlineAt,
      epochs,
      bytesDownFloor,
    );
    placed.push({
      outcome: simulated,
      sentAt,
      arrivedAt: at,
      wallStart: (wallSent - input.wallStart) / 1000,
      wallSeconds: (wallEnded - wallSent) / 1000,
    });
  }
  return resolveArrivals(placed, input.target, input.training.length > input.target, sentAt);
}

/**
 * Where a real outcome lands on the simulated clock. A device the timing says dropped out is a
 * disconnect at its dropout time; anything the coordinator would only hear of after the deadline
 * is a timeout at the deadline; everything else arrives when the timing says. A reply the device
 * never made (dropout, timeout) or that the coordinator was not listening for any more carries no
 * received bytes: the simulated coordinator never took them.
 *
 * Every simulated device downloads at least `bytesDownFloor` (the trainable weights), even when
 * the wire carried fewer: a pool session sends a version's weights once for all the virtual
 * clients it hosts, but each phone it stands for fetches them over its own link.
 */
export function placeOnClock(
  clock: VirtualClock,
  outcome: FitOutcome,
  sentAt: number,
  deadlineAt: number,
  epochs: number,
  bytesDownFloor: number,
): { at: number; outcome: FitOutcome } {
  const bytesDown = Math.max(outcome.bytes?.sent ?? 0, bytesDownFloor);
  const bytesUp = outcome.bytes?.received ?? 0;
  // Records keep the bytes the wire carried; only the simulated link charges the floor.
  const notReceived = { sent: outcome.bytes?.sent ?? 0, received: 0 };
  if (!outcome.ok && outcome.reason === "timeout") {
    // The wall-clock safety net fired: the simulated coordinator waited until its deadline.
    return { at: deadlineAt, outcome: { ...outcome, bytes: notReceived } };
  }
  const fit = clock.timing.fit({ clientId: outcome.clientId, sentAt, bytesDown, bytesUp, epochs });
  if (fit.at > deadlineAt) {
    const message = fit.arrived ? lateMessage(clock, fit.at - sentAt) : `dropped out after the deadline`;
    return {
      at: deadlineAt,
      outcome: failure(outcome.clientId, "timeout", ErrorCode.CLIENT_TIMEOUT, message, notReceived),
    };
  }
  if (!fit.arrived) {
    return {
      at: fit.at,
      outcome: failure(
        outcome.clientId,
        "disconnect",
        ErrorCode.CLIENT_DISCONNECTED,
        `dropped out in simulated time (${fit.reason})`,
        notReceived,
      ),
    };
  }
  return { at: fit.at, outcome };
}

/**
 * Decides a round from fits placed on the simulated clock: takes them in time order (ties by
 * client id), and with over-selection cancels everything still outstanding when the target-th
 * success arrives. The round ends then, or with its last outcome (the deadline, when one timed
 * out), or at `start` when nobody trained.
 */
export function resolveArrivals(
  placed: readonly VirtualFit[],
  target: number,
  overSelecting: boolean,
  start: number,
): VirtualCollection {
  const ordered = [...placed].sort(
    (a, b) =>
      a.arrivedAt - b.arrivedAt ||
      (a.outcome.clientId < b.outcome.clientId ? -1 : a.outcome.clientId > b.outcome.clientId ? 1 : 0),
  );
  let succeeded = 0;
  let closedAt: number | null = null;
  let end = start;
  const fits = ordered.map((fit): VirtualFit => {
    if (closedAt !== null) {
      const { clientId, bytes } = fit.outcome;
      const cancelled = failure(
        clientId,
        "cancelled",
        ErrorCode.CANCELLED,
        "over-selection: enough clients finished first in simulated time",
        { sent: bytes?.sent ?? 0, received: 0 },
      );
      return { ...fit, outcome: cancelled, arrivedAt: closedAt };
    }
    end = Math.max(end, fit.arrivedAt);
    if (fit.outcome.ok) succeeded++;
    if (overSelecting && fit.outcome.ok && succeeded === target) closedAt = fit.arrivedAt;
    return fit;
  });
  return { fits, end };
}

/**
 * The simulated time at which a round may sample: `from`, or the first step after it at which
 * some client is available (the coordinator idles until then), up to the clock's idle limit.
 */
export function nextAvailableTime(
  clock: VirtualClock,
  clientIds: readonly string[],
  from: number,
): { at: number; available: string[] } {
  const step = clock.idleStepSeconds ?? 60;
  const limit = from + (clock.maxIdleSeconds ?? 7 * 24 * 3600);
  let at = from;
  for (;;) {
    const available = clientIds.filter((id) => clock.timing.isAvailable(id, at));
    if (available.length > 0 || at + step > limit || clientIds.length === 0) return { at, available };
    at += step;
  }
}

/** The stop reason of a run that used up its simulated-time budget. */
export function budgetReached(budgetSeconds: number): string {
  return `simulated-time budget of ${budgetSeconds} s reached`;
}

/**
 * Whether a round may still start: the simulated time at which the next round would sample
 * (after idling until some client is available) is before the budget.
 */
export function withinBudget(clock: VirtualClock, clientIds: readonly string[], now: number): boolean {
  const budget = clock.budgetSeconds;
  if (budget === undefined) return true;
  return now < budget && nextAvailableTime(clock, clientIds, now).at < budget;
}

function lateMessage(clock: VirtualClock, seconds: number): string {
  return `would take ${seconds.toFixed(1)} simulated seconds; the deadline is ${clock.deadlineSeconds}`;
}

function failure(
  clientId: string,
  reason: FitFailure["reason"],
  code: string,
  message: string,
  bytes?: FitFailure["bytes"],
): FitFailure {
  return { ok: false, clientId, reason, code, message, ...(bytes ? { bytes } : {}) };
}
