/**
 * A run's configuration as its report and the compare page show it: the scenario's settings that
 * decide the result (model, data, partition, E, B, lr, strategy options, privacy, seed), as one
 * flat list of `field → value` in the scenario's own field names, so two runs diff field by field.
 * Secrets (an external admission token) and addresses are left out.
 */
import { z } from "zod";
import type { Scenario } from "../schema.js";

export type ConfigValue = string | number | boolean;
export type RunConfig = Record<string, ConfigValue>;

export const runConfigSchema = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()]));

/** Readable names for the fields a researcher looks for first; the rest show their path. */
const LABELS: Record<string, string> = {
  model: "model",
  dataset: "dataset",
  partition: "partition",
  clients: "clients",
  rounds: "rounds",
  "fit.epochs": "local epochs E",
  "fit.batchSize": "batch size B",
  "fit.learningRate": "learning rate",
  strategy: "strategy",
  seed: "seed",
};

export function configLabel(field: string): string {
  return LABELS[field] ?? field;
}

function flatten(value: unknown, prefix: string, out: RunConfig): void {
  if (value === undefined || value === null) return;
  if (Array.isArray(value)) {
    out[prefix] = JSON.stringify(value);
  } else if (typeof value === "object") {
    for (const [key, inner] of Object.entries(value)) flatten(inner, `${prefix}.${key}`, out);
  } else if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") {
    out[prefix] = value;
  }
}

/** The configuration of one run of `scenario` with the strategy that actually ran. */
export function runConfigOf(scenario: Scenario, strategy: string): RunConfig {
  const out: RunConfig = { model: scenario.model };
  if (scenario.initModel) out.initModel = scenario.initModel;
  const { name: dataset, dataDir: _dir, path: _path, ...datasetOptions } = scenario.dataset;
  out.dataset = dataset;
  flatten(datasetOptions, "dataset", out);
  const { kind, ...partitionOptions } = scenario.partition;
  out.partition = kind;
  flatten(partitionOptions, "partition", out);
  out.clients = scenario.clients;
  if (scenario.external) out["external.clients"] = scenario.external.clients;
  if (scenario.clientsPerRound !== undefined) out.clientsPerRound = scenario.clientsPerRound;
  else out.fractionFit = scenario.fractionFit;
  out.minFitClients = scenario.minFitClients;
  out.rounds = scenario.rounds;
  flatten(scenario.fit, "fit", out);
  const { name: _name, ...strategyOptions } = scenario.strategy;
  out.strategy = strategy;
  flatten(strategyOptions, "strategy", out);
  const privacy = scenario.privacy;
  out.privacy = [
    privacy?.envelope ? "envelope" : "",
    privacy?.dp ? `dp (${privacy.dp.mode})` : "",
    privacy?.secagg ? "secagg" : "",
  ]
    .filter(Boolean)
    .join(" + ");
  if (out.privacy === "") out.privacy = "none";
  flatten(privacy?.dp, "privacy.dp", out);
  flatten(privacy?.secagg, "privacy.secagg", out);
  if (scenario.overSelection !== undefined) out.overSelection = scenario.overSelection;
  flatten(scenario.limits, "limits", out);
  out.roundDeadlineSeconds = scenario.roundDeadlineSeconds;
  out.clock = scenario.clock;
  out.seed = scenario.seed;
  return out;
}

export function formatConfigValue(value: ConfigValue | undefined): string {
  if (value === undefined) return "—";
  return typeof value === "number" ? String(Number(value.toPrecision(6))) : String(value);
}

/**
 * The fields whose values differ between runs (a field one run lacks counts as different), in
 * the order they first appear; runs without a configuration are left out of the comparison.
 */
export function configDifferences(configs: ReadonlyArray<RunConfig | undefined>): string[] {
  const known = configs.filter((c): c is RunConfig => c !== undefined);
  if (known.length < 2) return [];
  const fields: string[] = [];
  for (const config of known)
    for (const field of Object.keys(config)) if (!fields.includes(field)) fields.push(field);
  return fields.filter((field) => new Set(known.map((c) => formatConfigValue(c[field]))).size > 1);
}

/**
 * The configuration of a `fedsim coordinator` run: the federation it was given, without the
 * simulation's fields (partition, clock), whose defaults would describe clients it never had;
 * `minClients` is how many nodes each round waited for.
 */
export function deploymentConfigOf(federation: Scenario, strategy: string, minClients: number): RunConfig {
  const out: RunConfig = {};
  for (const [field, value] of Object.entries(runConfigOf(federation, strategy))) {
    if (field === "clients" || field === "clock" || field === "partition" || field.startsWith("partition."))
      continue;
    out[field] = value;
  }
  return { ...out, minClients };
}
