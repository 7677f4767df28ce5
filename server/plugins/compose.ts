import type { AggregationInput, ClientFailure } from "../../common/strategy/strategy.js";
import type { ClientProxy, FitSuccess } from "../client-proxy.js";
import { toClientUpdate } from "../fit-collection.js";
import type { PluginTime, RoundPlugin, RoundPreparation } from "../round-plugin.js";

/**
 * Several round plugins as one, each named for its slot in a checkpoint. Their hooks run in the
 * given order; `collect` is a pipeline, each plugin receiving what the one before produced (so
 * SecAgg's unmasked sum reaches DP, which noises it); its input is the individual updates when
 * no part makes one.
 */
export class ComposedPlugin implements RoundPlugin {
  readonly protection: NonNullable<RoundPlugin["protection"]>;
  private readonly parts: [string, RoundPlugin][];

  constructor(parts: Record<string, RoundPlugin>) {
    this.parts = Object.entries(parts);
    this.protection = {
      secretSampling: this.parts.some(([, p]) => p.protection?.secretSampling === true),
      hidesClientReports: this.parts.some(([, p]) => p.protection?.hidesClientReports === true),
    };
  }

  shouldStop(round: number): string | null {
    for (const [, p] of this.parts) {
      const reason = p.shouldStop?.(round) ?? null;
      if (reason !== null) return reason;
    }
    return null;
  }

  /**
   * The parts prepare independently; all start before any is awaited, so a slow or failing stage
   * (SecAgg's key exchange) does not keep the others from seeing the round.
   */
  async prepareRound(
    round: number,
    sampled: readonly ClientProxy[],
    available: number,
    time?: PluginTime,
  ): Promise<RoundPreparation> {
    const preps = await Promise.all(
      this.parts.map(([, p]) => p.prepareRound?.(round, sampled, available, time)),
    );
    const merged: RoundPreparation = {};
    for (const prep of preps) {
      if (!prep) continue;
      const excluded = [...(merged.excluded ?? []), ...(prep.excluded ?? [])];
      Object.assign(merged, prep);
      if (excluded.length > 0) merged.excluded = excluded;
    }
    return merged;
  }

  async collect(
    round: number,
    successes: FitSuccess[],
    failures: ClientFailure[],
    previous: AggregationInput | null = null,
    time?: PluginTime,
  ): Promise<AggregationInput> {
    let input = previous;
    for (const [, p] of this.parts) {
      if (p.collect) input = await p.collect(round, successes, failures, input, time);
    }
    // No part made the input (envelopes only): the strategy sees each update, as without a plugin.
    return input ?? { kind: "individual", updates: successes.map(toClientUpdate) };
  }

  afterAggregate(round: number, successes: FitSuccess[], kept: boolean): Record<string, number> {
    const metrics: Record<string, number> = {};
    for (const [, p] of this.parts) Object.assign(metrics, p.afterAggregate?.(round, successes, kept));
    return metrics;
  }

  endRound(round: number): void {
    for (const [, p] of this.parts) p.endRound?.(round);
  }

  /** Each stateful part's state under its name. */
  state(): Record<string, unknown> {
    const state: Record<string, unknown> = {};
    for (const [name, p] of this.parts) if (p.state) state[name] = p.state();
    return state;
  }

  restore(state: unknown): void {
    const slots = (typeof state === "object" && state !== null ? state : {}) as Record<string, unknown>;
    for (const [name, p] of this.parts) p.restore?.(slots[name]);
  }
}
