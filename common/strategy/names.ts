/** Every strategy a scenario (or `fedsim run --strategy`) can name; the schema and factory share it. */
export const STRATEGY_NAMES = [
  "fedavg",
  "fedprox",
  "fedavgm",
  "fedadam",
  "fedyogi",
  "fedadagrad",
  "fedmedian",
  "fedtrimmedavg",
  "krum",
  "multikrum",
  "fedbuff",
  "fedasync",
] as const;

export type StrategyName = (typeof STRATEGY_NAMES)[number];

export function isStrategyName(name: string): name is StrategyName {
  return (STRATEGY_NAMES as readonly string[]).includes(name);
}

/** The asynchronous ones: no rounds, a model version per flush (server/async-loop.ts). */
export const ASYNC_STRATEGY_NAMES = ["fedbuff", "fedasync"] as const satisfies readonly StrategyName[];

export function isAsyncStrategyName(name: string): boolean {
  return (ASYNC_STRATEGY_NAMES as readonly string[]).includes(name);
}
