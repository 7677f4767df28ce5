import { readFile } from "node:fs/promises";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { formatZodIssues } from "../common/protocol.js";

/**
 * The scenario file format (YAML or JSON). Every field has a default that makes sense for a
 * small simulation, so a scenario states only what it changes. Errors name the file and field.
 */
const positiveInt = z.number().int().positive();

const partitionSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("iid") }).strict(),
  z.object({ kind: z.literal("shards"), shardsPerClient: positiveInt }).strict(),
  z
    .object({ kind: z.literal("dirichlet"), alpha: z.number().positive(), minSize: positiveInt.optional() })
    .strict(),
  z.object({ kind: z.literal("powerlaw"), exponent: z.number().nonnegative().optional() }).strict(),
  z.object({ kind: z.literal("natural") }).strict(),
]);

const datasetSchema = z
  .object({
    name: z.enum(["mnist", "fashion-mnist", "idx", "csv", "synthetic"]),
    dataDir: z.string().optional(),
    path: z.string().optional(),
    /** Use only the first N training examples (quick experiments). */
    limitTrain: positiveInt.optional(),
    limitTest: positiveInt.optional(),
    synthetic: z
      .object({
        alpha: z.number().nonnegative(),
        beta: z.number().nonnegative(),
        numDevices: positiveInt.optional(),
      })
      .partial()
      .optional(),
  })
  .strict();

const dpSchema = z
  .object({
    mode: z.enum(["central", "distributed", "local"]).default("central"),
    noiseMultiplier: z.number().nonnegative(),
    clipNorm: z.number().positive(),
    delta: z.number().gt(0).lt(1).default(1e-5),
    conversion: z.enum(["classic", "balle"]).default("classic"),
    targetEpsilon: z.number().positive().optional(),
    adaptive: z
      .object({
        targetQuantile: z.number().gt(0).lt(1).default(0.5),
        clipLearningRate: z.number().positive().default(0.2),
        clippedCountStddev: z.number().nonnegative().optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

const secaggSchema = z
  .object({
    graph: z.enum(["complete", "secagg+"]).default("complete"),
    /** Shamir threshold t; default from the graph. */
    threshold: positiveInt.optional(),
    /** Values are clamped to ±clipRange before fixed-point quantisation. */
    clipRange: z.number().positive().default(1),
  })
  .strict();

export const scenarioSchema = z
  .object({
    name: z.string().min(1),
    description: z.string().optional(),
    seed: z.number().int().nonnegative().default(0),
    backend: z.enum(["auto", "gpu", "node", "wasm", "cpu"]).default("auto"),
    dataset: datasetSchema.default({ name: "mnist" }),
    partition: partitionSchema.default({ kind: "iid" }),
    model: z.string().default("mnist-2nn"),
    initModel: z.string().optional(),
    trainableLayers: z.array(z.string()).optional(),
    clients: positiveInt.max(100_000).default(10),
    /** Client pool processes; 0 hosts every client inside the runner's own process. */
    processes: z.number().int().nonnegative().max(64).optional(),
    rounds: z.number().int().nonnegative().default(5),
    fractionFit: z.number().gt(0).max(1).default(1),
    clientsPerRound: positiveInt.optional(),
    minFitClients: positiveInt.default(1),
    roundDeadlineSeconds: z.number().positive().default(300),
    fit: z
      .object({
        epochs: positiveInt.default(1),
        batchSize: positiveInt.default(10),
        learningRate: z.number().positive().default(0.05),
        proximalMu: z.number().nonnegative().optional(),
      })
      .strict()
      .default({ epochs: 1, batchSize: 10, learningRate: 0.05 }),
    strategy: z
      .object({
        name: z.enum(["fedavg"]).default("fedavg"),
        serverLearningRate: z.number().positive().optional(),
      })
      .strict()
      .default({ name: "fedavg" }),
    privacy: z
      .object({
        envelope: z.boolean().default(false),
        dp: dpSchema.optional(),
        secagg: secaggSchema.optional(),
      })
      .strict()
      .optional(),
    /** Clients that drop out: each sampled client leaves a round with this probability. */
    dropouts: z
      .object({
        probability: z.number().min(0).max(1).default(0),
        /** Specific clients that drop in specific rounds: { "3": [0, 1] } */
        schedule: z.record(z.string(), z.array(z.number().int().nonnegative())).optional(),
      })
      .strict()
      .optional(),
    expect: z
      .object({
        finalAccuracy: z
          .object({ gte: z.number().optional(), lte: z.number().optional() })
          .strict()
          .optional(),
        epsilon: z.object({ gte: z.number().optional(), lte: z.number().optional() }).strict().optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export type Scenario = z.infer<typeof scenarioSchema>;
export type ScenarioInput = z.input<typeof scenarioSchema>;

/** Validates a parsed scenario object; throws INVALID_SCENARIO with one line per problem. */
export function parseScenario(raw: unknown, source = "scenario"): Scenario {
  const parsed = scenarioSchema.safeParse(raw);
  if (!parsed.success) {
    throw new FedsimError(
      ErrorCode.INVALID_SCENARIO,
      `${source}: invalid scenario`,
      formatZodIssues(parsed.error, `${source}: `),
    );
  }
  const s = parsed.data;
  const problems: string[] = [];
  if (s.minFitClients > s.clients)
    problems.push(`${source}: minFitClients: ${s.minFitClients} exceeds clients (${s.clients})`);
  if (s.clientsPerRound !== undefined && s.clientsPerRound > s.clients) {
    problems.push(`${source}: clientsPerRound: ${s.clientsPerRound} exceeds clients (${s.clients})`);
  }
  if (s.partition.kind === "shards" && s.dataset.name === "synthetic") {
    problems.push(`${source}: partition: use "natural" for synthetic data`);
  }
  if (problems.length > 0)
    throw new FedsimError(ErrorCode.INVALID_SCENARIO, `${source}: invalid scenario`, problems);
  return s;
}

export async function loadScenarioFile(file: string): Promise<Scenario> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    throw new FedsimError(
      ErrorCode.INVALID_SCENARIO,
      `${file}: cannot read scenario file (${(err as Error).message})`,
    );
  }
  let raw: unknown;
  try {
    raw = file.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new FedsimError(
      ErrorCode.INVALID_SCENARIO,
      `${file}: not valid ${file.endsWith(".json") ? "JSON" : "YAML"}`,
      [`${file}: ${(err as Error).message.split("\n")[0]}`],
    );
  }
  const scenario = parseScenario(raw, file);
  // Paths inside a scenario are relative to the scenario file.
  const base = path.dirname(path.resolve(file));
  const resolve = (p: string | undefined) => (p === undefined ? undefined : path.resolve(base, p));
  return {
    ...scenario,
    ...(scenario.initModel ? { initModel: resolve(scenario.initModel) } : {}),
    dataset: {
      ...scenario.dataset,
      ...(scenario.dataset.dataDir ? { dataDir: resolve(scenario.dataset.dataDir) } : {}),
      ...(scenario.dataset.path ? { path: resolve(scenario.dataset.path) } : {}),
    },
  };
}
