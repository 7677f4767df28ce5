import { ErrorCode, FedsimError } from "../common/errors.js";
import type { ConfigLayer } from "../scenarios/coordinator-config.js";

/**
 * The coordinator's options that are scenario fields, and where each lands in the config layer
 * the command line puts over `--config FILE`. Only options typed on the command line go in, so a
 * file's value is never overridden by an option's default.
 */
export const FLAG_PATHS = {
  rounds: "rounds",
  model: "model",
  initModel: "initModel",
  trainableLayers: "trainableLayers",
  dataset: "dataset.name",
  dataDir: "dataset.dataDir",
  fractionFit: "fractionFit",
  clientsPerRound: "clientsPerRound",
  minFitClients: "minFitClients",
  deadline: "roundDeadlineSeconds",
  epochs: "fit.epochs",
  batchSize: "fit.batchSize",
  lr: "fit.learningRate",
  seed: "seed",
  backend: "backend",
  strategy: "strategy.name",
  concurrency: "strategy.concurrency",
  bufferSize: "strategy.bufferSize",
  serverLr: "strategy.serverLearningRate",
  mixing: "strategy.mixing",
  envelope: "privacy.envelope",
  dpNoise: "privacy.dp.noiseMultiplier",
  dpClip: "privacy.dp.clipNorm",
  dpMode: "privacy.dp.mode",
  dpDelta: "privacy.dp.delta",
  targetEpsilon: "privacy.dp.targetEpsilon",
  secagg: "privacy.secagg.graph",
  secaggClipRange: "privacy.secagg.clipRange",
  maxExamplesPerClient: "limits.maxExamplesPerClient",
  maxUpdateNorm: "limits.maxUpdateNorm",
} as const;

export type FederationFlag = keyof typeof FLAG_PATHS;

/**
 * The layer of the options given: each flag at its path, `--staleness*` as one staleness spec,
 * and every `--strategy-option key=value` under `strategy` (dotted keys nest: staleness.a=0.3).
 */
export function flagLayer(
  values: Record<string, unknown>,
  given: (flag: string) => boolean,
  strategyOptions: readonly string[] = [],
): ConfigLayer {
  const layer: ConfigLayer = {};
  for (const [flag, at] of Object.entries(FLAG_PATHS)) {
    if (given(flag) && values[flag] !== undefined) setAt(layer, at.split("."), values[flag]);
  }
  const staleness = stalenessFromFlags(values, given);
  if (staleness) setAt(layer, ["strategy", "staleness"], staleness);
  for (const option of strategyOptions) {
    const { key, value } = parseStrategyOption(option);
    setAt(layer, ["strategy", ...key.split(".")], value);
  }
  return layer;
}

/** `--staleness KIND --staleness-a A --staleness-b B` as the schema's staleness spec. */
function stalenessFromFlags(
  values: Record<string, unknown>,
  given: (flag: string) => boolean,
): Record<string, unknown> | undefined {
  const kind = given("staleness") ? values.staleness : undefined;
  const a = given("stalenessA") ? values.stalenessA : undefined;
  const b = given("stalenessB") ? values.stalenessB : undefined;
  if (kind === undefined && a === undefined && b === undefined) return undefined;
  if (kind === "constant") return { kind };
  if (kind === "hinge" || b !== undefined) return { kind: "hinge", a: a ?? 1, b: b ?? 0 };
  return { kind: kind ?? "polynomial", a: a ?? 0.5 };
}

/** `key=value`; the value is read as JSON when it is (numbers, true, false), else kept as text. */
export function parseStrategyOption(option: string): { key: string; value: unknown } {
  const eq = option.indexOf("=");
  const key = eq > 0 ? option.slice(0, eq).trim() : "";
  if (!/^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*$/.test(key)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, "invalid options", [
      `--strategy-option: "${option}" is not key=value (e.g. momentum=0.9, staleness.kind=hinge)`,
    ]);
  }
  const text = option.slice(eq + 1).trim();
  try {
    return { key, value: JSON.parse(text) };
  } catch {
    return { key, value: text };
  }
}

/** commander collector for a repeatable option. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

function setAt(target: ConfigLayer, keys: readonly string[], value: unknown): void {
  let node = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== "object" || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as ConfigLayer;
  }
  node[keys[keys.length - 1]] = value;
}
