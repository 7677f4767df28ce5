import { readFile } from "node:fs/promises";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { parseScenario, type Scenario } from "./schema.js";

/**
 * `fedsim coordinator --config FILE`: the scenario format's federation sections, so a scenario
 * tried in simulation configures the real coordinator unchanged. Three layers, each overriding
 * the one before: the schema's defaults, the file, then the options given on the command line.
 */

/** The sections a coordinator of real nodes reads. */
export const FEDERATION_KEYS = [
  "name",
  "description",
  "seed",
  "backend",
  "dataset",
  "model",
  "initModel",
  "trainableLayers",
  "rounds",
  "fractionFit",
  "clientsPerRound",
  "minFitClients",
  "overSelection",
  "roundDeadlineSeconds",
  "fit",
  "strategy",
  "privacy",
  "limits",
  "evaluation",
] as const;

/** Sections that describe simulated clients: a coordinator skips them, saying which. */
export const SIMULATION_KEYS = [
  "clients",
  "processes",
  "partition",
  "clock",
  "virtual",
  "dropouts",
  "heterogeneity",
  "availability",
  "external",
  "attackers",
  "stragglers",
  "sweep",
  "expect",
] as const;

/** Objects whose `kind` decides their other fields: a later layer replaces them whole. */
const REPLACED_WHOLE = new Set(["staleness", "learningRateSchedule"]);

export type ConfigLayer = Record<string, unknown>;

export interface ConfigFile {
  source: string;
  layer: ConfigLayer;
  /** Simulation sections the file had, which the coordinator does not use. */
  ignored: string[];
}

/** Reads a YAML or JSON config (a scenario file works): its federation sections, and what it skipped. */
export async function readConfigFile(file: string): Promise<ConfigFile> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `${file}: cannot read config file (${(err as Error).message})`,
    );
  }
  let raw: unknown;
  try {
    raw = file.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `${file}: not valid ${file.endsWith(".json") ? "JSON" : "YAML"}`,
      [`${file}: ${(err as Error).message.split("\n")[0]}`],
    );
  }
  if (!isPlainObject(raw)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `${file}: a config file is a mapping of sections`);
  }
  const layer: ConfigLayer = {};
  const ignored: string[] = [];
  for (const [key, value] of Object.entries(raw)) {
    if ((SIMULATION_KEYS as readonly string[]).includes(key)) ignored.push(key);
    else layer[key] = value;
  }
  return { source: file, layer: resolvePaths(layer, path.dirname(path.resolve(file))), ignored };
}

/**
 * The federation the coordinator runs: the file's layer under the flags' layer, checked by the
 * scenario schema (and its cross-field rules), errors naming the file or the flags and the field.
 * `clients` is the number of clients a round waits for (`--min-clients`): the async strategies'
 * concurrency and the sample size default from it as they do from a scenario's clients.
 */
export function resolveFederation(
  file: ConfigFile | undefined,
  flags: ConfigLayer,
  clients: number,
): Scenario {
  // Checked alone first, so that a bad value in the file is reported against the file.
  const base = { name: "coordinator", clients: MAX_CLIENTS };
  if (file) parseScenario({ ...base, ...file.layer }, file.source);
  const merged = mergeLayers(file?.layer ?? {}, flags);
  const scenario = parseScenario(
    { ...base, ...merged },
    file ? `${file.source} with the options given` : "options",
  );
  return { ...scenario, clients };
}

/**
 * The schema's cross-field checks compare sample sizes with `clients`; a coordinator does not
 * know how many will connect, so they are checked against the schema's bound instead.
 */
const MAX_CLIENTS = 100_000;

/** `over` on top of `under`: nested sections merge field by field, other values are replaced. */
export function mergeLayers(under: ConfigLayer, over: ConfigLayer): ConfigLayer {
  const out: ConfigLayer = { ...under };
  for (const [key, value] of Object.entries(over)) {
    const below = out[key];
    out[key] =
      isPlainObject(value) && isPlainObject(below) && !REPLACED_WHOLE.has(key)
        ? mergeLayers(below, value)
        : value;
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Paths in a config file are relative to the file, as in a scenario. */
function resolvePaths(layer: ConfigLayer, base: string): ConfigLayer {
  const at = (p: unknown) => (typeof p === "string" ? path.resolve(base, p) : p);
  const out: ConfigLayer = { ...layer };
  if (layer.initModel !== undefined) out.initModel = at(layer.initModel);
  if (isPlainObject(layer.dataset)) {
    const dataset = { ...layer.dataset };
    if (dataset.dataDir !== undefined) dataset.dataDir = at(dataset.dataDir);
    if (dataset.path !== undefined) dataset.path = at(dataset.path);
    out.dataset = dataset;
  }
  return out;
}
