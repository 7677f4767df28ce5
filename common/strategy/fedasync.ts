import { mixInto } from "./async-aggregate.js";
import type { AsyncStepResult, AsyncStrategy, StaleUpdate } from "./async-strategy.js";
import { DEFAULT_FIT_CONFIG } from "./fedavg.js";
import { type AsyncOptions, DEFAULT_CONCURRENCY } from "./fedbuff.js";
import { FEDBUFF_STALENESS, type StalenessSpec, stalenessWeight, validateStaleness } from "./staleness.js";
import type { FitConfig } from "./strategy.js";
import { requireIntegerAtLeast, requireLeftOpen } from "./validate.js";

export interface FedAsyncOptions extends AsyncOptions {
  /** α in (0, 1]: how far each update pulls the model toward the client's. Default 0.6. */
  mixing?: number;
}

export const DEFAULT_MIXING = 0.6;

/**
 * FedAsync (Xie, Koyejo and Gupta 2019): every arriving update publishes a version,
 * x ← (1 − αₜ)·x + αₜ·x_client with αₜ = α·s(τ). The default s is polynomial with a = ½, one of
 * the paper's choices (constant and hinge are the others).
 */
export class FedAsync implements AsyncStrategy {
  readonly name: string = "fedasync";
  readonly asynchronous = true as const;
  readonly updatesPerVersion = 1;
  readonly concurrency: number;
  readonly mixing: number;
  readonly staleness: StalenessSpec;
  private readonly onFitConfig: (version: number) => FitConfig;

  constructor(options: FedAsyncOptions = {}) {
    this.concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    this.mixing = options.mixing ?? DEFAULT_MIXING;
    this.staleness = options.staleness ?? FEDBUFF_STALENESS;
    requireIntegerAtLeast("concurrency", this.concurrency, 1);
    requireLeftOpen("mixing", this.mixing, 0, 1);
    validateStaleness(this.staleness);
    const fitConfig = options.fitConfig ?? DEFAULT_FIT_CONFIG;
    this.onFitConfig = options.onFitConfig ?? (() => fitConfig);
  }

  fitConfig(version: number): FitConfig {
    return this.onFitConfig(version);
  }

  onUpdate(current: Float32Array, update: StaleUpdate): AsyncStepResult {
    const weight = this.mixing * stalenessWeight(this.staleness, update.staleness);
    return { weights: mixInto(current, update.base, update.delta, weight), weight };
  }
}
