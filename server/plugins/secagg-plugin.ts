import type { AggregationInput, ClientFailure } from "../../common/strategy/strategy.js";
import type { ClientProxy, FitSuccess } from "../client-proxy.js";
import type { PluginTime, RoundPlugin, RoundPreparation } from "../round-plugin.js";
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

  async prepareRound(
    round: number,
    sampled: readonly ClientProxy[],
    _available?: number,
    time?: PluginTime,
  ): Promise<RoundPreparation> {
    const { config, excluded } = await this.secagg.setup(round, sampled, time);
    return { secagg: config, excluded };
  }

  async collect(
    _round: number,
    successes: FitSuccess[],
    _failures?: ClientFailure[],
    _previous?: AggregationInput | null,
    time?: PluginTime,
  ): Promise<AggregationInput> {
    const sum = await this.secagg.collect(successes, time);
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
