import { createRoundKeyPair, EnvelopeOpener } from "../common/crypto/envelope.js";
import { ErrorCode } from "../common/errors.js";
import type { FitConfig } from "../common/strategy/strategy.js";
import type { FlatWeights } from "../common/weights.js";
import { type ClientProxy, type FitOutcome, type FitRequest, fitOrInternalError } from "./client-proxy.js";
import { placeOnClock, type VirtualClock } from "./virtual-round.js";

/** One fit of the asynchronous loop, from its request until the loop takes its outcome. */
export interface Flight {
  client: ClientProxy;
  /** The version the client trains on, and that version's trainable values. */
  version: number;
  base: Float32Array;
  wallSent: number;
  /** Simulated request time and a lower bound of the outcome's arrival (0 on the real clock). */
  sentAt: number;
  lowerBound: number;
  /** The outcome, when (simulated; 0 on the real clock) it reaches the coordinator, and in which order it settled. */
  settled: { outcome: FitOutcome; at: number; wallEnded: number; order: number } | null;
  /** Resolves once the fit has settled. */
  done: Promise<void>;
}

export interface LaunchInput {
  client: ClientProxy;
  version: number;
  weights: FlatWeights;
  frozen: FlatWeights | null;
  config: FitConfig;
  /** Wall-clock deadline of the real fit (on the virtual clock only a safety net). */
  deadlineMs: number;
  clock?: VirtualClock;
  /** Simulated time of the request (virtual clock). */
  now: number;
  envelope: boolean;
  /** Called once the outcome is known; returns the settle order. */
  onSettled: () => number;
}

/**
 * Sends one fit request and tracks it. The wire's round is the version trained on: replies are
 * matched by the proxy's nonce, so a reply that arrives after newer versions were published is
 * still accepted, while replays and unknown nonces stay refused. On the virtual clock the outcome
 * is placed at its simulated arrival, and a fit that cannot arrive before its simulated deadline
 * times out there without training.
 */
export function launchFlight(input: LaunchInput): Flight {
  const { client, clock, config } = input;
  const sentAt = input.now;
  const sealing = input.envelope ? envelopeFor(input.version) : null;
  const flight: Flight = {
    client,
    version: input.version,
    base: input.weights.values,
    wallSent: performance.now(),
    sentAt,
    lowerBound: sentAt,
    settled: null,
    done: Promise.resolve(),
  };
  const settle = (outcome: FitOutcome, at: number) => {
    sealing?.close();
    const wallEnded = performance.now();
    flight.settled = { outcome, at, wallEnded, order: 0 };
    flight.settled.order = input.onSettled();
  };
  const deadlineAt = sentAt + (clock?.deadlineSeconds ?? 0);
  if (clock) {
    const bytesDown = input.weights.values.byteLength;
    const earliest = clock.timing.earliestArrival({
      clientId: client.id,
      sentAt,
      bytesDown,
      epochs: config.epochs,
    });
    flight.lowerBound = Math.min(earliest, deadlineAt);
    if (earliest > deadlineAt) {
      const message = `cannot arrive before the simulated deadline of ${clock.deadlineSeconds} s`;
      settle(
        { ok: false, clientId: client.id, reason: "timeout", code: ErrorCode.CLIENT_TIMEOUT, message },
        deadlineAt,
      );
      return flight;
    }
  }
  const request: FitRequest = {
    round: input.version,
    config,
    weights: input.weights,
    frozen: input.frozen,
    ...(sealing ? { envelope: sealing.envelope } : {}),
  };
  flight.done = fitOrInternalError(client, request, input.deadlineMs).then((outcome) => {
    if (!clock) return settle(outcome, 0);
    const placed = placeOnClock(
      clock,
      outcome,
      sentAt,
      deadlineAt,
      config.epochs,
      input.weights.values.byteLength,
    );
    settle(placed.outcome, placed.at);
  });
  return flight;
}

/** A fresh envelope key per fit: fits span versions, so one key per round would not do. */
function envelopeFor(version: number): { envelope: NonNullable<FitRequest["envelope"]>; close: () => void } {
  const keys = createRoundKeyPair();
  const opener = new EnvelopeOpener({ round: version, secretKey: keys.secretKey });
  return {
    envelope: { publicKey: keys.publicKey, open: (sealed, signer) => opener.open(sealed, signer) },
    close: () => opener.close(),
  };
}
