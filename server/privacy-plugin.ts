import { createRoundKeyPair, EnvelopeOpener } from "../common/crypto/envelope.js";
import { RdpAccountant } from "../common/dp/accountant.js";
import { AdaptiveClipping } from "../common/dp/adaptive.js";
import { addGaussianNoise, cryptoNormalSource, type NormalSource } from "../common/dp/noise.js";
import type { Conversion } from "../common/dp/rdp.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import type { AggregationInput } from "../common/strategy/strategy.js";
import type { FitSuccess } from "./client-proxy.js";
import type { RoundPlugin, RoundPreparation } from "./round-loop.js";

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
 * fixed-size draw without replacement; like TF Federated, we account it with the Poisson
 * analysis at the same q (see docs/PRIVACY.md).
 */
export class PrivacyPlugin implements RoundPlugin {
  readonly accountant = new RdpAccountant();
  private readonly adaptive: AdaptiveClipping | null;
  private readonly noise: NormalSource;
  private opener: EnvelopeOpener | null = null;
  private round = { q: 0, sampled: 0 };

  constructor(private readonly options: PrivacyPluginOptions) {
    this.noise = options.noise ?? cryptoNormalSource();
    const dp = options.dp;
    if (dp && dp.noiseMultiplier <= 0 && dp.targetEpsilon !== undefined) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, "dp.targetEpsilon needs dp.noiseMultiplier > 0");
    }
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

  prepareRound(round: number, sampled: number, available: number): RoundPreparation {
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
    return prep;
  }

  collect(_round: number, successes: FitSuccess[]): AggregationInput {
    const dp = this.options.dp;
    if (!dp) {
      return {
        kind: "individual",
        updates: successes.map((s) => ({
          clientId: s.clientId,
          numExamples: s.numExamples,
          delta: s.delta,
          metrics: s.metrics,
        })),
      };
    }
    if (successes.length === 0) throw new FedsimError(ErrorCode.TOO_FEW_CLIENTS, "no updates to aggregate");
    const sum = new Float32Array(successes[0].delta.length);
    for (const s of successes) for (let i = 0; i < sum.length; i++) sum[i] += s.delta[i];
    if (dp.mode === "central")
      addGaussianNoise(sum, this.updateNoiseMultiplier() * this.clipNorm!, this.noise);
    // A fixed denominator (the sampled count, not the survivors) keeps the sensitivity at S/m.
    return {
      kind: "sum",
      weightedDeltaSum: sum,
      totalWeight: Math.max(1, this.round.sampled),
      count: successes.length,
      clientIds: successes.map((s) => s.clientId),
    };
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

  endRound(): void {
    this.opener?.close();
    this.opener = null;
  }
}
