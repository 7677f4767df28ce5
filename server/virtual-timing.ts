/**
 * The contract between the coordinator's loops (synchronous rounds, asynchronous buffers) and a
 * simulation's virtual clock. On the real clock there is no VirtualTiming: the loops use the
 * wall clock and the clients' real delays. On the virtual clock nobody sleeps: a fit still
 * trains for real, but when it *arrives* is computed from the client's device profile and the
 * real payload sizes, and the loops take arrivals in simulated-time order.
 *
 * The server never imports the scenario engine; scenarios/sim implements this interface.
 */

/** A fit as the virtual clock sees it: who, when it was sent, and how big it was. */
export interface FitTimingInput {
  clientId: string;
  /** Simulated seconds (since the run began) at which the request left the coordinator. */
  sentAt: number;
  /** Payload bytes of the request (weights down). */
  bytesDown: number;
  /** Payload bytes of the reply (update up); 0 when there was no reply. */
  bytesUp: number;
  /** Local epochs the request asked for. */
  epochs: number;
}

/** When a fit's reply reaches the coordinator, or when the device dropped out during it. */
export type SimulatedFit = { arrived: true; at: number } | { arrived: false; at: number; reason: string };

export interface VirtualTiming {
  /** The simulated arrival of a fit's reply (or its dropout), from the real payload sizes. */
  fit(input: FitTimingInput): SimulatedFit;
  /**
   * A lower bound on the arrival, known before training (the upload still to come counts only
   * its latency): a fit whose bound is past the deadline need not train at all.
   */
  earliestArrival(input: Omit<FitTimingInput, "bytesUp">): number;
  /** Whether the client can be sampled at simulated time `at` (online, and idle/charging if required). */
  isAvailable(clientId: string, at: number): boolean;
}
