/**
 * The order in which the asynchronous loop takes events on the virtual clock: a conservative
 * discrete-event rule. Fits train for real and in parallel, so their replies come back in any
 * wall-clock order; a reply's simulated arrival is known only once it is in, and before that the
 * VirtualTiming's earliest arrival bounds it from below. An arrival may be taken only when no fit
 * still training could arrive before it; ties go to the smaller client id, and at equal simulated
 * time arrivals go before new dispatches. Pure, so the rule is tested on its own.
 */

/** One fit in flight as the rule sees it. */
export interface FlightView {
  clientId: string;
  /** A lower bound of the simulated time at which this fit's outcome reaches the coordinator. */
  lowerBound: number;
  /** The simulated time of its outcome, once its reply (or failure) is in; null while training. */
  settledAt: number | null;
}

export type NextEvent =
  /** Take the settled fit at this index. */
  | { kind: "arrival"; index: number; at: number }
  /** Start a fit (or let the clock idle forward) at `dispatchAt`. */
  | { kind: "dispatch"; at: number }
  /** Not decidable yet: wait for a fit still training. */
  | { kind: "wait" };

/**
 * The next event, or "wait". `dispatchAt` is when the loop would start another fit (Infinity when
 * no slot is free).
 */
export function nextEvent(flights: readonly FlightView[], dispatchAt: number): NextEvent {
  let best = -1;
  for (let i = 0; i < flights.length; i++) {
    const f = flights[i];
    if (f.settledAt === null) continue;
    const b = best < 0 ? null : flights[best];
    if (
      b === null ||
      f.settledAt < (b.settledAt as number) ||
      (f.settledAt === b.settledAt && f.clientId < b.clientId)
    ) {
      best = i;
    }
  }
  const bestAt = best < 0 ? Number.POSITIVE_INFINITY : (flights[best].settledAt as number);
  const arrivalFirst = bestAt <= dispatchAt;
  const at = Math.min(bestAt, dispatchAt);
  if (at === Number.POSITIVE_INFINITY) return { kind: "wait" };
  for (const f of flights) {
    if (f.settledAt !== null) continue;
    if (f.lowerBound < at) return { kind: "wait" };
    if (f.lowerBound === at) {
      // It could arrive at the very same time: before a dispatch always, before an arrival by id.
      if (!arrivalFirst || f.clientId < flights[best].clientId) return { kind: "wait" };
    }
  }
  return arrivalFirst ? { kind: "arrival", index: best, at } : { kind: "dispatch", at };
}
