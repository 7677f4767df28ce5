import { type LedgerEntry, RdpAccountant } from "../../common/dp/accountant.js";
import { AdaptiveClipping, type AdaptiveClippingState } from "../../common/dp/adaptive.js";
import { sumClipped } from "../../common/dp/clip.js";
import { addGaussianNoise, cryptoNormalSource, type NormalSource } from "../../common/dp/noise.js";
import type { Conversion } from "../../common/dp/rdp.js";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import type { AggregationInput, ClientFailure } from "../../common/strategy/strategy.js";
import { addScaledInPlace } from "../../common/vector-passes.js";
import type { ClientProxy, FitSuccess } from "../client-proxy.js";
import type { RoundPlugin, RoundPreparation } from "../round-plugin.js";

export interface DpSettings {
  /** central: the coordinator noises the sum; local: each client adds all of it; distributed: each adds 1/m of the variance. */
  mode: "central" | "distributed" | "local";
  noiseMultiplier: number;
  clipNorm: number;
  delta: number;
  conversion: Conversion;
  targetEpsilon?: number;
  adaptive?: { targetQuantile: number; clipLearningRate: number; clippedCountStddev?: number };
}

export interface DpPluginOptions {
  dp: DpSettings;
  /** Expected clients per round, for adaptive clipping's default σ_b. */
  expectedClientsPerRound: number;
  noise?: NormalSource;
  log: (line: string) => void;
}

/** A DP plugin's checkpointed state: the accountant's ledger and the adaptive clip state. */
export interface DpPluginState {
  ledger: LedgerEntry[];
  adaptive: AdaptiveClippingState | null;
}

/**
 * Client-level DP-FedAvg (McMahan et al. 2018) as a round plugin: per-client clip and noise
 * settings, the noised sum, the RDP accountant and adaptive clipping.
 *
 * Accounting: each round that releases a model is one step of the sampled Gaussian mechanism
 * with q = sampled / connected and the round's effective noise multiplier. Sampling here is a
 * fixed-size draw without replacement, from a CSPRNG (`protection.secretSampling`); like TF
 * Federated, we account it with the Poisson analysis at the same q (see docs/PRIVACY.md).
 */
export class DpPlugin implements RoundPlugin {
  readonly protection = { secretSampling: true, hidesClientReports: true };
  accountant = new RdpAccountant();
  private adaptive: AdaptiveClipping | null;
  private readonly dp: DpSettings;
  private readonly noise: NormalSource;
  private round = { q: 0, sampled: 0 };

  constructor(private readonly options: DpPluginOptions) {
    const dp = options.dp;
    this.dp = dp;
    this.noise = options.noise ?? cryptoNormalSource();
    if (dp.noiseMultiplier <= 0 && dp.targetEpsilon !== undefined) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, "dp.targetEpsilon needs dp.noiseMultiplier > 0");
    }
    this.adaptive = dp.adaptive
      ? new AdaptiveClipping({
          initialClipNorm: dp.clipNorm,
          targetQuantile: dp.adaptive.targetQuantile,
          clipLearningRate: dp.adaptive.clipLearningRate,
          ...(dp.adaptive.clippedCountStddev !== undefined
            ? { clippedCountStddev: dp.adaptive.clippedCountStddev }
            : { expectedClientsPerRound: options.expectedClientsPerRound }),
          noiseMultiplier: dp.noiseMultiplier,
        })
      : null;
  }

  get clipNorm(): number {
    return this.adaptive?.clipNorm ?? this.dp.clipNorm;
  }

  /** Noise multiplier applied to the update sum (smaller than z under adaptive clipping). */
  private updateNoiseMultiplier(): number {
    return this.adaptive ? this.adaptive.noiseMultiplierForUpdates() : this.dp.noiseMultiplier;
  }

  epsilon(): number | undefined {
    const dp = this.dp;
    if (dp.noiseMultiplier <= 0) return undefined;
    return this.accountant.totalSteps() === 0 ? 0 : this.accountant.epsilon(dp.delta, dp.conversion).epsilon;
  }

  shouldStop(_round: number): string | null {
    const dp = this.dp;
    if (!dp.targetEpsilon || this.round.q === 0) return null;
    const next = this.accountant.epsilonIfStepped(this.round.q, dp.noiseMultiplier, dp.delta, dp.conversion);
    if (next.epsilon > dp.targetEpsilon) {
      return `another round would spend ε=${next.epsilon.toFixed(3)} > target ${dp.targetEpsilon} (δ=${dp.delta})`;
    }
    return null;
  }

  prepareRound(_round: number, sampledClients: readonly ClientProxy[], available: number): RoundPreparation {
    const sampled = sampledClients.length;
    this.round = { q: available > 0 ? sampled / available : 0, sampled };
    const clipNorm = this.clipNorm;
    const z = this.updateNoiseMultiplier();
    const noiseStd =
      this.dp.mode === "local"
        ? z * clipNorm
        : this.dp.mode === "distributed"
          ? (z * clipNorm) / Math.sqrt(Math.max(1, sampled))
          : 0;
    return { dp: { clipNorm, noiseStd, reportClippedBit: this.adaptive !== null } };
  }

  /**
   * The noised sum the strategy aggregates. A sum an earlier plugin already made (SecAgg's
   * unmasked sum) gets the central noise in place; otherwise the individual updates are summed
   * here. Either way the denominator is the sampled count, not the survivors, which keeps the
   * sensitivity at S/m.
   */
  collect(
    round: number,
    successes: FitSuccess[],
    _failures?: ClientFailure[],
    previous?: AggregationInput | null,
  ): AggregationInput {
    const totalWeight = Math.max(1, this.round.sampled);
    if (previous?.kind === "sum") {
      if (this.dp.mode === "central")
        addGaussianNoise(previous.weightedDeltaSum, this.updateNoiseMultiplier() * this.clipNorm, this.noise);
      return { ...previous, totalWeight };
    }
    if (successes.length === 0) throw new FedsimError(ErrorCode.TOO_FEW_CLIENTS, "no updates to aggregate");
    return {
      kind: "sum",
      weightedDeltaSum: this.sumUpdates(round, successes),
      totalWeight,
      count: successes.length,
      clientIds: successes.map((s) => s.clientId),
    };
  }

  /**
   * Σ Δₖ of the individual updates. Central: the coordinator clips each update to S itself (a
   * hostile client's unclipped update moves the sum by S at most) and adds N(0, z²S²). Local and
   * distributed: the updates arrive already noised, and clipping a noised update would cut its
   * noise, so they are summed as received; the honest clients' own clipping and noise are what
   * protects them (docs/PRIVACY.md).
   */
  private sumUpdates(round: number, successes: readonly FitSuccess[]): Float32Array {
    const length = successes[0].delta.length;
    if (this.dp.mode !== "central") {
      const sum = new Float32Array(length);
      for (const s of successes) addScaledInPlace(sum, s.delta, 1);
      return sum;
    }
    const clipNorm = this.clipNorm;
    // In place: each delta is its message's own receive buffer, read by nothing after this sum.
    const { sum, clipped } = sumClipped(
      successes.map((s) => s.delta),
      clipNorm,
      length,
    );
    if (clipped > 0) {
      this.options.log(
        `privacy: round ${round}: clipped ${clipped} update(s) that arrived with a norm above S=${clipNorm}`,
      );
    }
    addGaussianNoise(sum, this.updateNoiseMultiplier() * clipNorm, this.noise);
    return sum;
  }

  afterAggregate(_round: number, successes: FitSuccess[], kept: boolean): Record<string, number> {
    const dp = this.dp;
    if (!kept && dp.noiseMultiplier > 0) {
      // Distributed noise is only complete when every sampled client added its share.
      const effective =
        dp.mode === "distributed"
          ? dp.noiseMultiplier * Math.sqrt(successes.length / Math.max(1, this.round.sampled))
          : dp.noiseMultiplier;
      this.accountant.step(this.round.q, effective);
    }
    if (this.adaptive && !kept) {
      const bits = successes.reduce((s, x) => s + (x.clippedBit ?? 0), 0);
      this.adaptive.update(bits, Math.max(1, this.round.sampled), this.noise);
    }
    const metrics: Record<string, number> = {};
    const eps = this.epsilon();
    if (eps !== undefined) metrics.epsilon = eps;
    metrics.clipNorm = this.clipNorm;
    return metrics;
  }

  /** The accountant's ledger and the adaptive clip state, so a resumed run counts every round. */
  state(): DpPluginState {
    return { ledger: this.accountant.ledger(), adaptive: this.adaptive?.state() ?? null };
  }

  restore(state: unknown): void {
    const s = state as Partial<DpPluginState> | null | undefined;
    if (!s || !Array.isArray(s.ledger))
      throw new FedsimError(ErrorCode.CHECKPOINT, "checkpoint has no privacy ledger");
    this.accountant = RdpAccountant.fromLedger(s.ledger);
    if (this.adaptive && s.adaptive) this.adaptive = AdaptiveClipping.fromState(s.adaptive);
  }
}
