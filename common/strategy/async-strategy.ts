import type { FitConfig, Strategy } from "./strategy.js";

/** One arrived update as an asynchronous strategy sees it. */
export interface StaleUpdate {
  clientId: string;
  numExamples: number;
  /** local − base over the trainable tensors. */
  delta: Float32Array;
  /** The global trainable values the client trained from (an older version when τ > 0). */
  base: Float32Array;
  /** τ: server versions published between the one the client trained on and now. */
  staleness: number;
}

export interface AsyncStepResult {
  /** The next version's trainable values when this update publishes one; null while buffering. */
  weights: Float32Array | null;
  /** The factor the update entered with: s(τ) for FedBuff, α·s(τ) for FedAsync. */
  weight: number;
}

/**
 * An asynchronous algorithm (FedBuff, FedAsync). There are no rounds: the coordinator keeps
 * `concurrency` clients training, hands each arriving update to `onUpdate` with its staleness,
 * and publishes a new model version whenever `onUpdate` returns weights. The loop
 * (server/async-loop.ts) knows no algorithm; the strategy never sees a socket.
 */
export interface AsyncStrategy {
  readonly name: string;
  readonly asynchronous: true;
  /** M: clients training at once. */
  readonly concurrency: number;
  /** Updates per published version (K for FedBuff, 1 for FedAsync). */
  readonly updatesPerVersion: number;
  /** The config a client trains with when it starts from `version`. */
  fitConfig(version: number): FitConfig;
  /** Takes one update; `current` is never written (it may still be on its way to clients). */
  onUpdate(current: Float32Array, update: StaleUpdate): AsyncStepResult;
}

export type AnyStrategy = Strategy | AsyncStrategy;

export function isAsyncStrategy(strategy: AnyStrategy): strategy is AsyncStrategy {
  return "asynchronous" in strategy && strategy.asynchronous === true;
}
