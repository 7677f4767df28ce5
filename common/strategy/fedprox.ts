import { FedAvg, type FedAvgOptions } from "./fedavg.js";
import type { FitConfig } from "./strategy.js";
import { requireNonNegativeFinite } from "./validate.js";

export interface FedProxOptions extends Omit<FedAvgOptions, "acceptPartialWork"> {
  /**
   * μ of the proximal term (μ/2)·‖w − w_global‖² that clients add to their loss. Required, any
   * finite μ ≥ 0: μ = 0 is the FedProx paper's own baseline ("FedProx, μ = 0": FedAvg that keeps
   * stragglers' partial work), so it is allowed rather than refused. The paper tunes μ over
   * {0.001, 0.01, 0.1, 1}.
   */
  proximalMu: number;
}

/**
 * FedProx (Li et al. 2020). The server side is FedAvg that keeps partial work: a client that ran
 * out of time after fewer epochs still contributes, because the proximal term keeps its update
 * close to the global model. The client side (the proximal term) is in the local trainer; this
 * strategy only puts μ into every round's config. A `proximalMu` already present in `fitConfig`
 * or returned by `onFitConfig` is replaced by this strategy's μ, so the two cannot disagree.
 */
export class FedProx extends FedAvg {
  override readonly name: string = "fedprox";
  readonly proximalMu: number;

  constructor(options: FedProxOptions) {
    super({ ...options, acceptPartialWork: true });
    requireNonNegativeFinite("proximalMu", options.proximalMu);
    this.proximalMu = options.proximalMu;
  }

  override fitConfigFor(round: number): FitConfig {
    return { ...super.fitConfigFor(round), proximalMu: this.proximalMu };
  }
}
