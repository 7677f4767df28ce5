import type { AggregationInput } from "../../common/strategy/strategy.js";
import type { ClientProxy, FitSuccess } from "../client-proxy.js";
import type { RoundPlugin, RoundPreparation } from "../round-plugin.js";
import { SecAggRound, type SecAggSettings } from "../secagg-round.js";

/**
 * Secure aggregation as a round plugin: the key stages before training (clients that fail them
 * are excluded from the round), then unmasking, which hands the strategy only the survivors' sum.
 */
export class SecAggPlugin implements RoundPlugin {
  readonly protection = { secretSampling: false, hidesClientReports: true };
  private readonly secagg: SecAggRound;

  constructor(settings: SecAggSettings, log: (line: string) => void) {
    this.secagg = new SecAggRound(settings, log);
  }

  async prepareRound(round: number, sampled: readonly ClientProxy[]): Promise<RoundPreparation> {
    const { config, excluded } = await this.secagg.setup(round, sampled);
    return { secagg: config, excluded };
  }

  async collect(_round: number, successes: FitSuccess[]): Promise<AggregationInput> {
    const sum = await this.secagg.collect(successes);
    return {
      kind: "sum",
      weightedDeltaSum: sum.weightedDeltaSum,
      totalWeight: sum.totalWeight,
      count: sum.survivors.length,
      clientIds: sum.survivors,
    };
  }

  endRound(): void {
    this.secagg.close();
  }
}
