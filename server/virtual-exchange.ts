import { ErrorCode } from "../common/errors.js";
import type { VirtualClock } from "./virtual-round.js";
import type { ExchangeTimingInput } from "./virtual-timing.js";

/** An exchange (federated evaluation, SecAgg stage) as the simulated clock decided it. */
export type PlacedExchange =
  | { ok: true; at: number }
  | { ok: false; at: number; reason: "timeout" | "disconnect"; code: string; message: string };

/**
 * Where an exchange's reply lands on the simulated clock, as placeOnClock does for a fit: a device
 * the timing says dropped out (or stopped being eligible) is a disconnect at that moment; a reply
 * the coordinator would only get after `deadlineAt` is a timeout at the deadline.
 */
export function placeExchange(
  clock: VirtualClock,
  input: ExchangeTimingInput,
  deadlineAt: number,
  what: string,
): PlacedExchange {
  const timed = clock.timing.exchange(input);
  if (timed.at > deadlineAt) {
    const late = timed.arrived
      ? `would take ${(timed.at - input.sentAt).toFixed(1)} simulated seconds`
      : "dropped out after the deadline";
    return {
      ok: false,
      at: deadlineAt,
      reason: "timeout",
      code: ErrorCode.CLIENT_TIMEOUT,
      message: `${what}: ${late}; the deadline is ${clock.deadlineSeconds}`,
    };
  }
  if (!timed.arrived) {
    return {
      ok: false,
      at: timed.at,
      reason: "disconnect",
      code: ErrorCode.CLIENT_DISCONNECTED,
      message: `${what}: dropped out in simulated time (${timed.reason})`,
    };
  }
  return { ok: true, at: timed.at };
}

/** Simulated-time order, ties by client id: how the coordinator takes outcomes on the virtual clock. */
export function bySimulatedArrival(
  a: { at: number; clientId: string },
  b: { at: number; clientId: string },
): number {
  return a.at - b.at || (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0);
}
