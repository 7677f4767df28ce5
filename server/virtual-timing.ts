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

/**
 * A request and its reply that are not a fit: a federated evaluation, or one SecAgg stage. Both
 * messages' bytes are the real ones; the device computes only when it evaluates.
 */
export interface ExchangeTimingInput {
  clientId: string;
  /** Simulated seconds (since the run began) at which the request left the coordinator. */
  sentAt: number;
  bytesDown: number;
  /** Payload bytes of the reply; 0 when there was none. */
  bytesUp: number;
  /** Examples the device scores between the two transfers (a forward pass each); 0 for a SecAgg stage. */
  evaluatedExamples: number;
  /**
   * Since when the device has been held to the exchange and may drop out: its previous message
   * in the same protocol (a SecAgg client between its masked input and unmasking); default sentAt.
   */
  engagedSince?: number;
}

export interface VirtualTiming {
  /** The simulated arrival of a fit's reply (or its dropout), from the real payload sizes. */
  fit(input: FitTimingInput): SimulatedFit;
  /**
   * A lower bound on the arrival, known before training (the upload still to come counts only
   * its latency): a fit whose bound is past the deadline need not train at all.
   */
  earliestArrival(input: Omit<FitTimingInput, "bytesUp">): number;
  /** The simulated arrival of an exchange's reply (or the device's dropout before it). */
  exchange(input: ExchangeTimingInput): SimulatedFit;
  /** Whether the client can be sampled at simulated time `at` (online, and idle/charging if required). */
  isAvailable(clientId: string, at: number): boolean;
}
