import type { NormalSource } from "../../common/dp/noise.js";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import type { Strategy } from "../../common/strategy/strategy.js";
import type { EdgeRequirements, RoundPlugin } from "../round-plugin.js";
import type { SecAggSettings } from "../secagg-round.js";
import { ComposedPlugin } from "./compose.js";
import { DpPlugin, type DpSettings } from "./dp-plugin.js";
import { EnvelopePlugin } from "./envelope-plugin.js";
import { SecAggPlugin } from "./secagg-plugin.js";

export type { DpSettings } from "./dp-plugin.js";

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
 * A run's privacy options as one round plugin: SecAgg, envelopes and DP (server/plugins/*),
 * composed in that order so DP noises the sum SecAgg unmasks. The constructor refuses the
 * combinations that cannot keep their promise.
 */
export class PrivacyPlugin extends ComposedPlugin {
  readonly overEdges: EdgeRequirements;

  constructor(options: PrivacyPluginOptions) {
    const { dp, secagg, log } = options;
    if (secagg && options.envelope) {
      throw new FedsimError(
        ErrorCode.INCOMPATIBLE_OPTIONS,
        "privacy: choose envelope or secagg; masked inputs are already unreadable to the coordinator",
      );
    }
    if (secagg && dp?.adaptive) {
      throw new FedsimError(
        ErrorCode.INCOMPATIBLE_OPTIONS,
        "privacy: adaptive clipping needs each client's clipped bit, which secure aggregation would hide; use a fixed clipNorm",
      );
    }
    const parts: Record<string, RoundPlugin> = {};
    // Under DP every client counts once (sensitivity S); otherwise FedAvg's example-count weights.
    if (secagg) parts.secagg = new SecAggPlugin({ ...secagg, weighted: dp === undefined }, log);
    if (options.envelope) parts.envelope = new EnvelopePlugin();
    if (dp) {
      parts.dp = new DpPlugin({
        dp,
        expectedClientsPerRound: options.expectedClientsPerRound,
        ...(options.noise ? { noise: options.noise } : {}),
        log,
      });
    }
    super(parts);
    this.overEdges = {
      sealed: options.envelope,
      // Local and distributed noise is already in the updates: clipping them would cut it. Under
      // SecAgg the edges hold masked inputs, and the clients' own clipping is what bounds them.
      clipAtEdge: dp?.mode === "central" && !secagg,
      uniformWeights: dp !== undefined,
    };
    if (secagg && dp?.mode === "local") {
      log("privacy: local DP with secure aggregation adds far more noise than needed; consider distributed");
    }
  }

  /**
   * Checkpoints written before the plugins were split hold DP's state at the top level
   * (`{ ledger, adaptive }`); they restore into the DP slot.
   */
  override restore(state: unknown): void {
    const legacy = typeof state === "object" && state !== null && "ledger" in state;
    super.restore(legacy ? { dp: state } : state);
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
