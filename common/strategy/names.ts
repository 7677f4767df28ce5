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
] as const;

export type StrategyName = (typeof STRATEGY_NAMES)[number];

export function isStrategyName(name: string): name is StrategyName {
  return (STRATEGY_NAMES as readonly string[]).includes(name);
}
