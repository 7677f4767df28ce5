import { coordinateMedian } from "./aggregate-robust.js";
import { FedAvg, type FedAvgOptions, individualDeltas } from "./fedavg.js";
import type { AggregationInput } from "./strategy.js";

export type FedMedianOptions = FedAvgOptions;

/**
 * FedMedian (Yin et al. 2018): the coordinate-wise median of the client deltas; with an even
 * count, the mean of the two middle values. Unweighted, like Flower's fedmedian.py: an example
 * count is self-reported, and weighting by it would hand an attacker the median.
 *
 * It must see every update, so it cannot run under secure aggregation or with central DP's
 * noisy sum (`requiresIndividualUpdates`); such input is refused with INCOMPATIBLE_OPTIONS.
 * The server learning rate still scales the median delta (default 1: x + median(Δ)).
 */
export class FedMedian extends FedAvg {
  override readonly name: string = "fedmedian";
  override readonly requiresIndividualUpdates: boolean = true;

  protected override combineDeltas(input: AggregationInput): Float32Array {
    return coordinateMedian(individualDeltas(input, this.name));
  }
}
