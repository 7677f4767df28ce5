import type { DpClientConfig } from "../common/protocol.js";
import type { AggregationInput, ClientFailure } from "../common/strategy/strategy.js";
import type { ClientProxy, FitFailure, FitRequest, FitSuccess } from "./client-proxy.js";
import type { VirtualClock } from "./virtual-round.js";

/**
 * Hooks that change what a round sends and how it aggregates, without the loop knowing the
 * algorithm: privacy (DP, envelopes) and secure aggregation plug in here.
 */
export interface RoundPlugin {
  /**
   * What the plugin's promise asks of the loop. `secretSampling`: draw each round's clients from
   * a CSPRNG, since DP's accounting assumes nobody can predict the sample. `hidesClientReports`:
   * clients report nothing about their data beside the protected update, so the loop refuses
   * federated evaluation, whose per-client answers nothing would protect.
   */
  readonly protection?: { secretSampling: boolean; hidesClientReports: boolean };
  /**
   * What the plugin asks of edges when the rounds run over them (docs/SCALE-OUT.md). A plugin
   * without it cannot run over edges.
   */
  readonly overEdges?: EdgeRequirements;
  /** Per-client DP settings and envelope key for this round. */
  prepareRound?(
    round: number,
    sampled: readonly ClientProxy[],
    available: number,
    time?: PluginTime,
  ): Promise<RoundPreparation> | RoundPreparation;
  /**
   * Turns successes into the strategy's input (e.g. adds central noise, or unmasks a sum).
   * `previous` is what an earlier plugin in a composition made of them (server/plugins/compose.ts).
   */
  collect?(
    round: number,
    successes: FitSuccess[],
    failures: ClientFailure[],
    previous?: AggregationInput | null,
    time?: PluginTime,
  ): Promise<AggregationInput | null> | AggregationInput | null;
  /** After aggregation (accountant step, adaptive clip update). Returns metrics for the record. */
  afterAggregate?(round: number, successes: FitSuccess[], kept: boolean): Record<string, number>;
  /** Checked before a round starts; a string stops the run with that reason. */
  shouldStop?(round: number): string | null;
  endRound?(round: number): void;
  /** Serialisable state for checkpoints (accountant ledger, adaptive clip norm, …). */
  state?(): unknown;
  restore?(state: unknown): void;
}

/** How a privacy plugin's rounds run over edges (server/edges/edge-privacy.ts). */
export interface EdgeRequirements {
  /** Updates are sealed to the coordinator (envelopes): edges forward each one unopened. */
  sealed: boolean;
  /** Central DP: each edge clips each accepted update to the round's clip norm before summing it. */
  clipAtEdge: boolean;
  /** DP: every update weighs 1 in a sum, since no example count travels (common/disclosure.ts). */
  uniformWeights: boolean;
}

export interface RoundPreparation {
  dp?: DpClientConfig;
  envelope?: FitRequest["envelope"];
  secagg?: FitRequest["secagg"];
  /** Sampled clients that already failed during preparation (e.g. a SecAgg key stage). */
  excluded?: FitFailure[];
}

/**
 * On the virtual clock a plugin's own messages (SecAgg's stages) take simulated time. The loop
 * says where they may start and when each client's fit reply arrived; the plugin records each
 * stage's simulated seconds and moves `end` to its last message, where the round goes on.
 */
export interface PluginTime {
  readonly clock: VirtualClock;
  /** Simulated seconds at which the plugin may send its first message. */
  readonly start: number;
  /** `collect` only: when each successful fit's reply (a SecAgg masked input) arrived. */
  readonly arrivals: ReadonlyMap<string, number>;
  /** Each stage's simulated seconds, by stage name, as the plugin ran them. */
  readonly stages: Record<string, number>;
  end: number;
}
