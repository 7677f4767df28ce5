import { ErrorCode, FedsimError } from "../errors.js";
import { weightedMean } from "./aggregate.js";
import { krumFeasible, krumSelect } from "./aggregate-robust.js";
import { FedAvg, type FedAvgOptions, individualDeltas } from "./fedavg.js";
import type { AggregationInput } from "./strategy.js";
import { requireIntegerAtLeast } from "./validate.js";

export interface KrumOptions extends FedAvgOptions {
  /**
   * f, the number of Byzantine clients to tolerate per round: an integer ≥ 0, default 1. Each
   * round needs n > 2f + 2 results (Blanchard et al. 2017); with fewer the model is kept.
   * (Flower's default is 0, which tolerates no attacker.)
   */
  byzantineClients?: number;
}

export interface MultiKrumOptions extends KrumOptions {
  /**
   * m, how many of the best-scored updates to average: an integer ≥ 1. Default n − f, the
   * choice in Blanchard et al.; a larger m is lowered to n − f each round (reported as
   * `krumSelected`), since averaging more than n − f would always include an attacker's slot.
   */
  multiKrumM?: number;
}

export const DEFAULT_BYZANTINE_CLIENTS = 1;

/**
 * Krum (Blanchard et al. 2017, "Machine Learning with Adversaries"): score each delta by the sum of
 * squared distances to its n − f − 2 nearest other deltas and take the lowest-scoring one as the
 * round's update. Pairwise distances are computed once per round (n(n−1)/2 passes).
 *
 * Needs individual updates (`requiresIndividualUpdates`); a sum is refused with
 * INCOMPATIBLE_OPTIONS. Example counts are ignored: Krum picks an update, it does not weigh them.
 */
export class Krum extends FedAvg {
  override readonly name: string = "krum";
  override readonly requiresIndividualUpdates: boolean = true;
  readonly byzantineClients: number;

  constructor(options: KrumOptions = {}) {
    super(options);
    this.byzantineClients = options.byzantineClients ?? DEFAULT_BYZANTINE_CLIENTS;
    requireIntegerAtLeast("byzantineClients", this.byzantineClients, 0);
    const perRound = options.clientsPerRound;
    if (perRound !== undefined && !krumFeasible(perRound, this.byzantineClients)) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `Krum needs n > 2f + 2 updates per round: clientsPerRound=${perRound} with byzantineClients=${this.byzantineClients} can never aggregate; sample at least ${2 * this.byzantineClients + 3} clients or lower byzantineClients`,
      );
    }
  }

  /** How many of the best-scored updates to average when `n` arrived; Krum takes one. */
  protected selectionSize(_n: number): number {
    return 1;
  }

  protected override refuseAggregation(count: number): string | null {
    if (krumFeasible(count, this.byzantineClients)) return null;
    return `Krum needs n > 2f + 2 updates: got n=${count} with f=${this.byzantineClients} (byzantineClients)`;
  }

  protected override combineDeltas(input: AggregationInput, metrics: Record<string, number>): Float32Array {
    const deltas = individualDeltas(input, this.name);
    const m = this.selectionSize(deltas.length);
    const { selected } = krumSelect(deltas, this.byzantineClients, m);
    metrics.krumSelected = selected.length;
    if (selected.length === 1) return deltas[selected[0]].slice();
    return weightedMean(
      selected.map((i) => deltas[i]),
      selected.map(() => 1),
    );
  }
}

/**
 * Multi-Krum (Blanchard et al. 2017, §5): the unweighted mean of the m lowest-scoring deltas.
 * m = 1 is Krum; m = n is close to FedAvg without the weights.
 */
export class MultiKrum extends Krum {
  override readonly name: string = "multikrum";
  readonly multiKrumM: number | undefined;

  constructor(options: MultiKrumOptions = {}) {
    super(options);
    this.multiKrumM = options.multiKrumM;
    if (this.multiKrumM !== undefined) {
      requireIntegerAtLeast("multiKrumM", this.multiKrumM, 1);
      const perRound = options.clientsPerRound;
      if (perRound !== undefined && this.multiKrumM > perRound - this.byzantineClients) {
        throw new FedsimError(
          ErrorCode.INVALID_CONFIG,
          `multiKrumM must be ≤ n − f = ${perRound - this.byzantineClients} (clientsPerRound=${perRound}, byzantineClients=${this.byzantineClients}), got ${this.multiKrumM}`,
        );
      }
    }
  }

  protected override selectionSize(n: number): number {
    const honestBound = n - this.byzantineClients;
    return Math.min(this.multiKrumM ?? honestBound, honestBound);
  }
}
