import { ErrorCode, FedsimError } from "../common/errors.js";
import { createRng, deriveSeed, sampleWithoutReplacement } from "../common/rng.js";
import type { RoundAvailability } from "../server/round-options.js";
import type { RoundRecord } from "../server/round-record.js";
import type { RoundContext, ScenarioHooks } from "./define.js";
import type { FleetCommand, FleetTransition } from "./pool-fleet.js";
import type { Scenario } from "./schema.js";

/** Where a script's commands go: the run's client pools. */
export interface CommandSink {
  send(command: FleetCommand): Promise<FleetTransition>;
}

/**
 * Runs a scenario's script between rounds: applies availability and scheduled network changes
 * through the pools, calls the user's hooks, and tells the round loop who is online, so that
 * sampling never picks a client the script has taken away.
 */
export class ScenarioScript {
  /** Client ids the pools reported offline (the coordinator may not have noticed yet). */
  private readonly offlineIds = new Set<string>();
  private onlineCount: number;
  private readonly killedIndices = new Set<number>();
  private stopReason: string | null = null;

  constructor(
    private readonly scenario: Pick<Scenario, "seed" | "clients">,
    private readonly pools: CommandSink,
    private readonly hooks: ScenarioHooks = {},
    /** Real clients the run also waits for (those that came); the script cannot take them offline. */
    private readonly externalClients: () => number = () => 0,
    private readonly log: (line: string) => void = () => {},
  ) {
    this.onlineCount = scenario.clients;
  }

  /** Whether a scenario needs per-round scripting at all (plain runs skip the round trips). */
  static needed(scenario: Scenario, hooks: ScenarioHooks): boolean {
    return (
      scenario.availability !== undefined ||
      (scenario.heterogeneity?.networkScale?.length ?? 0) > 0 ||
      hooks.onRoundStart !== undefined ||
      hooks.onRoundEnd !== undefined
    );
  }

  get stopRequested(): string | null {
    return this.stopReason;
  }

  async beforeRound(round: number): Promise<RoundAvailability> {
    this.apply(await this.pools.send({ type: "beforeRound", round }));
    await this.hooks.onRoundStart?.(this.context(round));
    return {
      exclude: new Set(this.offlineIds),
      expected: this.onlineCount + this.externalClients(),
      offline: this.scenario.clients - this.onlineCount,
    };
  }

  async afterRound(record: RoundRecord): Promise<void> {
    await this.hooks.onRoundEnd?.(this.context(record.round), record);
  }

  private apply(transition: FleetTransition): void {
    for (const c of transition.offline) this.offlineIds.add(c.clientId);
    for (const c of transition.online) this.offlineIds.delete(c.clientId);
    this.onlineCount = transition.onlineCount;
  }

  private context(round: number): RoundContext {
    const clients = this.scenario.clients;
    return {
      round,
      clients,
      kill: async (target) => {
        const indices = Array.isArray(target)
          ? [...(target as readonly number[])]
          : this.drawAlive(round, (target as { fraction: number }).fraction);
        for (const i of indices) {
          if (!Number.isInteger(i) || i < 0 || i >= clients) {
            throw new FedsimError(
              ErrorCode.INVALID_SCENARIO,
              `kill: client index ${i} is outside [0, ${clients})`,
            );
          }
        }
        this.apply(await this.pools.send({ type: "kill", clientIndices: indices }));
        for (const i of indices) this.killedIndices.add(i);
        this.log(`round ${round}: script killed ${indices.length} clients`);
        return indices;
      },
      revive: async (indices) => {
        const chosen = indices ? [...indices] : [...this.killedIndices];
        this.apply(await this.pools.send({ type: "revive", clientIndices: chosen }));
        for (const i of chosen) this.killedIndices.delete(i);
        this.log(`round ${round}: script revived ${chosen.length} clients`);
        return chosen;
      },
      setNetworkScale: async (scale) => {
        if (!(scale > 0 && Number.isFinite(scale))) {
          throw new FedsimError(
            ErrorCode.INVALID_SCENARIO,
            `setNetworkScale: scale must be > 0, got ${scale}`,
          );
        }
        await this.pools.send({ type: "setNetworkScale", scale });
        this.log(`round ${round}: script set the network scale to ${scale}`);
      },
      killed: () => [...this.killedIndices].sort((a, b) => a - b),
      stop: (reason) => {
        this.stopReason = reason;
      },
      log: (line) => this.log(`round ${round}: ${line}`),
    };
  }

  /** A seeded fraction of the clients not yet killed. */
  private drawAlive(round: number, fraction: number): number[] {
    if (!(fraction >= 0 && fraction <= 1)) {
      throw new FedsimError(ErrorCode.INVALID_SCENARIO, `kill: fraction must be in [0, 1], got ${fraction}`);
    }
    const alive = Array.from({ length: this.scenario.clients }, (_, i) => i).filter(
      (i) => !this.killedIndices.has(i),
    );
    const count = Math.round(fraction * alive.length);
    const rng = createRng(deriveSeed(this.scenario.seed, "script-kill", round));
    return sampleWithoutReplacement(alive.length, count, rng)
      .map((k) => alive[k])
      .sort((a, b) => a - b);
  }
}
