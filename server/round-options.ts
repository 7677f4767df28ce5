import type { Strategy } from "../common/strategy/strategy.js";
import type { FlatWeights } from "../common/weights.js";
import type { ClientDirectory, FitOutcome } from "./client-proxy.js";
import type { RoundPlugin } from "./round-plugin.js";
import type { EvaluationResult, RoundPhase, RoundRecord } from "./round-record.js";
import type { VirtualClock } from "./virtual-round.js";

/** What a scripted scenario says about the coming round, before it is sampled. */
export interface RoundAvailability {
  /** Clients that went offline for this round: never sampled, even if the server still sees them. */
  exclude: ReadonlySet<string>;
  /** How many clients are online this round: the loop waits until that many (not excluded) are connected. */
  expected: number;
  /** How many of the scenario's clients are offline (for the record). */
  offline?: number;
}

/** What the round loop (server/round-loop.ts) runs: the strategy, the clients, the controls. */
export interface RoundLoopOptions {
  strategy: Strategy;
  directory: ClientDirectory;
  /** Full model weights (all tensors); updated in place only by a successful aggregation. */
  model: FlatWeights;
  /** Names of the tensors that train and travel; the rest stay frozen. */
  trainable: ReadonlySet<string>;
  evaluate: (model: FlatWeights) => Promise<EvaluationResult>;
  rounds: number;
  /** Centralised evaluation every k rounds (and always after the last). Default 1. */
  evaluateEvery?: number;
  /** Federated evaluation after aggregation, on this fraction of the connected clients. */
  federatedEvaluation?: { fraction: number; everyRounds: number; timeoutMs: number };
  deadlineMs: number;
  /** How many clients must be connected before a round starts. */
  minAvailableClients: number;
  waitForClientsMs?: number;
  seed: number;
  plugin?: RoundPlugin;
  onRound?: (record: RoundRecord) => void | Promise<void>;
  onPhase?: (round: number, phase: RoundPhase, detail?: string) => void;
  /** Called with the round's sample (over-selected clients included) before any request leaves. */
  onSampled?: (round: number, clientIds: readonly string[]) => void;
  /** Called as each sampled client's outcome arrives (progress bars). */
  onClientOutcome?: (round: number, outcome: FitOutcome, sampled: number) => void;
  log?: (line: string) => void;
  /** Awaited before each round (scripted availability, scenario hooks). */
  beforeRound?: (round: number) => Promise<RoundAvailability | undefined> | RoundAvailability | undefined;
  /**
   * Over-selection: sample this fraction more clients than the strategy asks for and aggregate
   * the first ones to finish; the rest are cancelled (Bonawitz et al. 2019, §2.2).
   */
  overSelection?: number;
  /**
   * Run on the virtual clock (server/virtual-round.ts): sample only available clients, and decide
   * deadlines, dropouts and over-selection in simulated time. `deadlineMs` is then only the
   * wall-clock safety net of each real fit.
   */
  virtualClock?: VirtualClock;
  /** Continue a checkpointed run: the rounds already done, and the sampling RNG's state. */
  resume?: { records: RoundRecord[]; rngState: number[] };
}
