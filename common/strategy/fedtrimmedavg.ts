import { trimCount, trimmedMean } from "./aggregate-robust.js";
import { FedAvg, type FedAvgOptions, individualDeltas } from "./fedavg.js";
import type { AggregationInput } from "./strategy.js";
import { requireHalfOpen } from "./validate.js";

export interface FedTrimmedAvgOptions extends FedAvgOptions {
  /**
   * β in [0, 0.5): per coordinate, the ⌊β·n⌋ largest and ⌊β·n⌋ smallest values are dropped.
   * Default 0.2, Flower's `beta`. β = 0 is the unweighted mean.
   */
  trimBeta?: number;
}

export const DEFAULT_TRIM_BETA = 0.2;

/**
 * FedTrimmedAvg (Yin et al. 2018, coordinate-wise trimmed mean). Tolerates up to ⌊β·n⌋ arbitrary
 * values per coordinate. Unweighted, for the same reason as FedMedian. Needs individual updates
 * (`requiresIndividualUpdates`); a sum is refused with INCOMPATIBLE_OPTIONS.
 */
export class FedTrimmedAvg extends FedAvg {
  override readonly name: string = "fedtrimmedavg";
  override readonly requiresIndividualUpdates: boolean = true;
  readonly trimBeta: number;

  constructor(options: FedTrimmedAvgOptions = {}) {
    super(options);
    this.trimBeta = options.trimBeta ?? DEFAULT_TRIM_BETA;
    requireHalfOpen("trimBeta", this.trimBeta, 0, 0.5);
  }

  protected override combineDeltas(input: AggregationInput, metrics: Record<string, number>): Float32Array {
    const deltas = individualDeltas(input, this.name);
    const trim = trimCount(this.trimBeta, deltas.length);
    metrics.trimmedPerSide = trim;
    return trimmedMean(deltas, trim);
  }
}
