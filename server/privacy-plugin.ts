import { createRoundKeyPair, EnvelopeOpener } from "../common/crypto/envelope.js";
import { type LedgerEntry, RdpAccountant } from "../common/dp/accountant.js";
import { AdaptiveClipping, type AdaptiveClippingState } from "../common/dp/adaptive.js";
import { sumClipped } from "../common/dp/clip.js";
import { addGaussianNoise, cryptoNormalSource, type NormalSource } from "../common/dp/noise.js";
import type { Conversion } from "../common/dp/rdp.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { addScaledInPlace } from "../common/strategy/aggregate.js";
import type { AggregationInput, Strategy } from "../common/strategy/strategy.js";
import type { ClientProxy, FitSuccess } from "./client-proxy.js";
import { type RoundPlugin, type RoundPreparation, toClientUpdate } from "./round-loop.js";
import { SecAggRound, type SecAggSettings } from "./secagg-round.js";

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

export interface PrivacyPluginOptions {
  dp?: DpSettings;
  envelope: boolean;
  secagg?: Omit<SecAggSettings, "weighted">;
  /** Expected clients per round, for adaptive clipping's default σ_b. */
  expectedClientsPerRound: number;
  noise?: NormalSource;
  log: (line: string) => void;
}

/**
 * Client-level DP-FedAvg (McMahan et al. 2018) and per-round envelopes, as a round plugin.
 *
 * Accounting: each round that releases a model is one step of the sampled Gaussian mechanism
 * with q = sampled / connected and the round's effective noise multiplier. Sampling here is a
 * fixed-size draw without replacement, from a CSPRNG (`protection.secretSampling`); like TF
 * Federated, we account it with the Poisson analysis at the same q (see docs/PRIVACY.md).
 */
export class PrivacyPlugin implements RoundPlugin {
  readonly protection: NonNullable<RoundPlugin["protection"]>;
  accountant = new RdpAccountant();
  private adaptive: AdaptiveClipping | null;
  private readonly noise: NormalSource;
  private opener: EnvelopeOpener | null = null;
  private readonly secagg: SecAggRound | null;
  private round = { q: 0, sampled: 0 };

  constructor(private readonly options: PrivacyPluginOptions) {
    this.noise = options.noise ?? cryptoNormalSource();
    const dp = options.dp;
    this.protection = {
      secretSampling: dp !== undefined,
      hidesClientReports: dp !== undefined || options.secagg !== undefined,
    };
    if (dp && dp.noiseMultiplier <= 0 && dp.targetEpsilon !== undefined) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, "dp.targetEpsilon needs dp.noiseMultiplier > 0");
    }
    if (options.secagg && options.envelope) {
      throw new FedsimError(
        ErrorCode.INCOMPATIBLE_OPTIONS,
        "privacy: choose envelope or secagg; masked inputs are already unreadable to the coordinator",
      );
    }
    if (options.secagg && dp?.adaptive) {
      throw new FedsimError(
        ErrorCode.INCOMPATIBLE_OPTIONS,
        "privacy: adaptive clipping needs each client's clipped bit, which secure aggregation would hide; use a fixed clipNorm",
      );
    }
    if (options.secagg && dp?.mode === "local") {
      options.log(
        "privacy: local DP with secure aggregation adds far more noise than needed; consider distributed",
      );
    }
    // Under DP every client counts once (sensitivity S); otherwise FedAvg's example-count weights.
    this.secagg = options.secagg
      ? new SecAggRound({ ...options.secagg, weighted: dp === undefined }, options.log)
      : null;
    this.adaptive = dp?.adaptive
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

  get clipNorm(): number | undefined {
    return this.adaptive?.clipNorm ?? this.options.dp?.clipNorm;
  }

  /** Noise multiplier applied to the update sum (smaller than z under adaptive clipping). */
  private updateNoiseMultiplier(): number {
    const dp = this.options.dp;
    if (!dp) return 0;
    return this.adaptive ? this.adaptive.noiseMultiplierForUpdates() : dp.noiseMultiplier;
  }

  epsilon(): number | undefined {
    const dp = this.options.dp;
    if (!dp || dp.noiseMultiplier <= 0) return undefined;
    return this.accountant.totalSteps() === 0 ? 0 : this.accountant.epsilon(dp.delta, dp.conversion).epsilon;
  }

  shouldStop(_round: number): string | null {
    const dp = this.options.dp;
    if (!dp?.targetEpsilon || this.round.q === 0) return null;
    const next = this.accountant.epsilonIfStepped(this.round.q, dp.noiseMultiplier, dp.delta, dp.conversion);
    if (next.epsilon > dp.targetEpsilon) {
      return `another round would spend ε=${next.epsilon.toFixed(3)} > target ${dp.targetEpsilon} (δ=${dp.delta})`;
    }
    return null;
  }

  async prepareRound(
    round: number,
    sampledClients: readonly ClientProxy[],
    available: number,
  ): Promise<RoundPreparation> {
    const sampled = sampledClients.length;
    this.round = { q: available > 0 ? sampled / available : 0, sampled };
    const prep: RoundPreparation = {};
    const dp = this.options.dp;
    if (dp) {
      const clipNorm = this.clipNorm!;
      const z = this.updateNoiseMultiplier();
      const noiseStd =
        dp.mode === "local"
          ? z * clipNorm
          : dp.mode === "distributed"
            ? (z * clipNorm) / Math.sqrt(Math.max(1, sampled))
            : 0;
      prep.dp = { clipNorm, noiseStd, reportClippedBit: this.adaptive !== null };
    }
    if (this.options.envelope) {
      this.opener?.close();
      const keys = createRoundKeyPair();
      const opener = new EnvelopeOpener({ round, secretKey: keys.secretKey });
      this.opener = opener;
      prep.envelope = { publicKey: keys.publicKey, open: (sealed, signer) => opener.open(sealed, signer) };
    }
    if (this.secagg) {
      const { config, excluded } = await this.secagg.setup(round, sampledClients);
      prep.secagg = config;
      prep.excluded = excluded;
    }
    return prep;
  }

  async collect(round: number, successes: FitSuccess[]): Promise<AggregationInput> {
    const dp = this.options.dp;
    if (this.secagg) {
      const sum = await this.secagg.collect(successes);
      if (dp?.mode === "central")
        addGaussianNoise(sum.weightedDeltaSum, this.updateNoiseMultiplier() * this.clipNorm!, this.noise);
      return {
        kind: "sum",
        weightedDeltaSum: sum.weightedDeltaSum,
        // Under DP the denominator is fixed (sampled count); otherwise Σ example counts.
        totalWeight: dp ? Math.max(1, this.round.sampled) : sum.totalWeight,
        count: sum.survivors.length,
        clientIds: sum.survivors,
      };
    }
    if (!dp) {
      return {
        kind: "individual",
        updates: successes.map(toClientUpdate),
      };
    }
    if (successes.length === 0) throw new FedsimError(ErrorCode.TOO_FEW_CLIENTS, "no updates to aggregate");
    const sum = this.sumUpdates(round, successes, dp.mode);
    // A fixed denominator (the sampled count, not the survivors) keeps the sensitivity at S/m.
    return {
      kind: "sum",
      weightedDeltaSum: sum,
      totalWeight: Math.max(1, this.round.sampled),
      count: successes.length,
      clientIds: successes.map((s) => s.clientId),
    };
  }

  /**
   * Σ Δₖ of the individual updates under DP. Central: the coordinator clips each update to S
   * itself (a hostile client's unclipped update moves the sum by S at most) and adds N(0, z²S²).
   * Local and distributed: the updates arrive already noised, and clipping a noised update would
   * cut its noise, so they are summed as received; the honest clients' own clipping and noise are
   * what protects them (docs/PRIVACY.md).
   */
  private sumUpdates(
    round: number,
    successes: readonly FitSuccess[],
    mode: DpSettings["mode"],
  ): Float32Array {
    const length = successes[0].delta.length;
    if (mode !== "central") {
      const sum = new Float32Array(length);
      for (const s of successes) addScaledInPlace(sum, s.delta);
      return sum;
    }
    const clipNorm = this.clipNorm!;
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
    const dp = this.options.dp;
    const metrics: Record<string, number> = {};
    if (dp && !kept && dp.noiseMultiplier > 0) {
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
    const eps = this.epsilon();
    if (eps !== undefined) metrics.epsilon = eps;
    if (this.clipNorm !== undefined) metrics.clipNorm = this.clipNorm;
    return metrics;
  }

  /** The accountant's ledger and the adaptive clip state, so a resumed run counts every round. */
  state(): unknown {
    return { ledger: this.accountant.ledger(), adaptive: this.adaptive?.state() ?? null };
  }

  restore(state: unknown): void {
    const s = state as { ledger?: LedgerEntry[]; adaptive?: AdaptiveClippingState | null } | null;
    if (!s || !Array.isArray(s.ledger))
      throw new FedsimError(ErrorCode.CHECKPOINT, "checkpoint has no privacy ledger");
    this.accountant = RdpAccountant.fromLedger(s.ledger);
    if (this.adaptive && s.adaptive) this.adaptive = AdaptiveClipping.fromState(s.adaptive);
  }

  endRound(): void {
    this.opener?.close();
    this.opener = null;
    this.secagg?.close();
  }
}

/** Robust rules must see every update; secure aggregation hides them by design. */
export function assertStrategyFitsPrivacy(
  strategy: Strategy,
  options: Pick<PrivacyPluginOptions, "secagg"> & { dp?: unknown },
): void {
  if (options.dp && !options.secagg && strategy.requiresIndividualUpdates) {
    throw new FedsimError(
      ErrorCode.INCOMPATIBLE_OPTIONS,
      `strategy "${strategy.name}" needs each client's update, but DP-FedAvg aggregates a noised sum; use a mean-based strategy with DP`,
    );
  }
  if (options.secagg && strategy.requiresIndividualUpdates) {
    throw new FedsimError(
      ErrorCode.INCOMPATIBLE_OPTIONS,
      `strategy "${strategy.name}" needs each client's update, but secure aggregation shows the coordinator only their sum; use fedavg (or another mean-based strategy) with secagg`,
    );
  }
}
