import { StalenessBuffer } from "./async-aggregate.js";
import type { AsyncStepResult, AsyncStrategy, StaleUpdate } from "./async-strategy.js";
import { DEFAULT_FIT_CONFIG } from "./fedavg.js";
import { FEDBUFF_STALENESS, type StalenessSpec, stalenessWeight, validateStaleness } from "./staleness.js";
import type { FitConfig } from "./strategy.js";
import { requireIntegerAtLeast, requirePositiveFinite } from "./validate.js";

export interface AsyncOptions {
  /** M: clients training at once. Default 10. */
  concurrency?: number;
  /** s(τ); default FedBuff's 1/√(1 + τ). */
  staleness?: StalenessSpec;
  fitConfig?: FitConfig;
  /** Config by the model version a client starts from (schedules). */
  onFitConfig?: (version: number) => FitConfig;
}

export interface FedBuffOptions extends AsyncOptions {
  /** K: updates buffered per server step. Default 10. */
  bufferSize?: number;
  /** η of the server step. Default 1. */
  serverLearningRate?: number;
}

export const DEFAULT_CONCURRENCY = 10;
export const DEFAULT_BUFFER_SIZE = 10;

/**
 * FedBuff (Nguyen et al., AISTATS 2022): M clients train at once; each arriving update enters a
 * buffer weighted by s(τ) (default 1/√(1 + τ)); after K updates the server applies
 * η · Σ s(τᵢ)·Δᵢ / K and publishes a version. Updates are not weighted by example count, as in
 * the paper: with K = M, η = 1, τ = 0 and equal client data sizes this is FedAvg exactly.
 */
export class FedBuff implements AsyncStrategy {
  readonly name: string = "fedbuff";
  readonly asynchronous = true as const;
  readonly concurrency: number;
  readonly bufferSize: number;
  readonly serverLearningRate: number;
  readonly staleness: StalenessSpec;
  private readonly onFitConfig: (version: number) => FitConfig;
  private buffer: StalenessBuffer | null = null;

  constructor(options: FedBuffOptions = {}) {
    this.concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    this.bufferSize = options.bufferSize ?? DEFAULT_BUFFER_SIZE;
    this.serverLearningRate = options.serverLearningRate ?? 1;
    this.staleness = options.staleness ?? FEDBUFF_STALENESS;
    requireIntegerAtLeast("concurrency", this.concurrency, 1);
    requireIntegerAtLeast("bufferSize", this.bufferSize, 1);
    requirePositiveFinite("serverLearningRate", this.serverLearningRate);
    validateStaleness(this.staleness);
    const fitConfig = options.fitConfig ?? DEFAULT_FIT_CONFIG;
    this.onFitConfig = options.onFitConfig ?? (() => fitConfig);
  }

  get updatesPerVersion(): number {
    return this.bufferSize;
  }

  /** Updates waiting in the buffer. */
  get buffered(): number {
    return this.buffer?.count ?? 0;
  }

  fitConfig(version: number): FitConfig {
    return this.onFitConfig(version);
  }

  onUpdate(current: Float32Array, update: StaleUpdate): AsyncStepResult {
    if (this.buffer === null || this.buffer.length !== current.length) {
      this.buffer = new StalenessBuffer(current.length);
    }
    const weight = stalenessWeight(this.staleness, update.staleness);
    this.buffer.add(update.delta, weight);
    if (this.buffer.count < this.bufferSize) return { weights: null, weight };
    return { weights: this.buffer.flush(current, this.serverLearningRate), weight };
  }
}
