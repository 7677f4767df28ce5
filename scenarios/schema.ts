import { readFile } from "node:fs/promises";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { MIN_TOKEN_CHARS } from "../common/crypto/auth.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { MAX_TOKEN_CHARS, safeParseUntrusted } from "../common/protocol.js";
import { type DefinitionKind, knownNames } from "../common/registry.js";
import { learningRateScheduleSchema } from "../common/strategy/lr-schedule.js";
import { stalenessSchema } from "../common/strategy/staleness.js";
import { describeIssues, didYouMean } from "../common/suggest.js";
import { remotePoolsProblems, remotePoolsSchema } from "./remote-pools-schema.js";
import { ATTACK_NAMES } from "./sim/attacks.js";
import { availabilityProblems, availabilitySchema } from "./sim/availability.js";
import { heterogeneityProblems, heterogeneitySchema } from "./sim/heterogeneity.js";
import { sweepOverrideProblems, sweepOverrideSchema } from "./sweep-overrides.js";
import { virtualBlockSchema, virtualClockProblems } from "./virtual-schema.js";

/**
 * The scenario file format (YAML or JSON). Every field has a default that makes sense for a
 * small simulation, so a scenario states only what it changes. Errors name the file and field.
 */
const positiveInt = z.number().int().positive();

/** TensorFlow.js backends a scenario (and a pool process) may ask for; see common/tf/backend.ts. */
export const BACKEND_NAMES = ["auto", "gpu", "node", "webgpu", "native", "wasm", "cpu"] as const;

const partitionSchema = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("iid") }).strict(),
  z.object({ kind: z.literal("shards"), shardsPerClient: positiveInt }).strict(),
  z
    .object({ kind: z.literal("dirichlet"), alpha: z.number().positive(), minSize: positiveInt.optional() })
    .strict(),
  z.object({ kind: z.literal("powerlaw"), exponent: z.number().nonnegative().optional() }).strict(),
  z.object({ kind: z.literal("natural") }).strict(),
  /**
   * Not a partition: each client holds `size` distinct examples drawn with a seed per client, and
   * clients overlap. For more clients than examples (scenarios/scale-100k-virtual.yaml).
   */
  z.object({ kind: z.literal("sample"), size: positiveInt }).strict(),
]);

const datasetSchema = z
  .object({
    /** A built-in dataset or one registered with `defineDataset` (common/registry.ts). */
    name: z.string().min(1),
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
    /** Passed to a registered dataset's loader. */
    options: z.record(z.string(), z.unknown()).optional(),
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

const boundSchema = z.object({ gte: z.number().optional(), lte: z.number().optional() }).strict();

/**
 * What a run must achieve; `fedsim run` exits non-zero and lists each miss. Accuracy and loss are
 * the centralised test metrics; the counts add up over all rounds (scenarios/report.ts).
 */
const expectSchema = z
  .object({
    finalAccuracy: boundSchema.optional(),
    bestAccuracy: boundSchema.optional(),
    finalLoss: boundSchema.optional(),
    epsilon: boundSchema.optional(),
    /** Rounds that ran (a DP budget or a hook may stop a run early). */
    rounds: boundSchema.optional(),
    timeouts: boundSchema.optional(),
    dropouts: boundSchema.optional(),
    /** Every failure of any kind (timeouts, dropouts, refusals, errors). */
    failures: boundSchema.optional(),
    /** Over-selected clients cancelled because enough others finished first. */
    cancelled: boundSchema.optional(),
    /** The fewest clients aggregated in any round. */
    minParticipants: boundSchema.optional(),
    /** Rounds whose aggregation was skipped and kept the previous model. */
    keptRounds: boundSchema.optional(),
  })
  .strict();

export type Expectations = z.infer<typeof expectSchema>;

/**
 * Byzantine clients. `clients: { count }` picks that many clients with a draw seeded by the
 * scenario's seed (see attackerIndices in scenarios/sim/attacks.ts); a list names them.
 */
const attackersSchema = z
  .object({
    clients: z.union([
      z.array(z.number().int().nonnegative()).min(1),
      z.object({ count: z.number().int().nonnegative() }).strict(),
    ]),
    attack: z.enum(ATTACK_NAMES),
    /** κ for scale and signFlipScale (default 10). */
    scale: z.number().optional(),
    /** σ for gaussian (default 1). */
    stddev: z.number().nonnegative().optional(),
    /** c for sameValue (default 1). */
    value: z.number().optional(),
  })
  .strict();

/** FedProx's stragglers: each round a client trains only 1..E−1 epochs with this probability. */
const stragglersSchema = z
  .object({
    fraction: z.number().min(0).max(1),
    /** Seed of the per-round coins; default: the scenario's seed. */
    seed: z.number().int().nonnegative().optional(),
  })
  .strict();

/** Run the scenario once per strategy (same seed, data and attackers) and compare. */
const sweepSchema = z
  .object({
    strategies: z.array(z.string().min(1)).min(1),
    /** Per-strategy expectations, e.g. { fedavg: { finalAccuracy: { lte: 0.5 } } }. */
    expect: z.record(z.string(), expectSchema).optional(),
    /**
     * Per-strategy fields, e.g. { fedavg: { overSelection: 0.3 }, fedbuff: { strategy: {
     * concurrency: 100 } } }; which fields may differ is in scenarios/sweep-overrides.ts.
     */
    overrides: z.record(z.string(), sweepOverrideSchema).optional(),
  })
  .strict();

export const scenarioSchema = z
  .object({
    name: z.string().min(1),
    description: z.string().optional(),
    seed: z.number().int().nonnegative().default(0),
    backend: z.enum(BACKEND_NAMES).default("auto"),
    dataset: datasetSchema.default({ name: "mnist" }),
    partition: partitionSchema.default({ kind: "iid" }),
    /** A zoo model or one registered with `defineModel`; not needed with initModel. */
    model: z.string().min(1).default("mnist-2nn"),
    /** Client logic registered with `defineClient`; default: fedsim's local training. */
    client: z.string().min(1).optional(),
    initModel: z.string().optional(),
    trainableLayers: z.array(z.string()).optional(),
    clients: positiveInt.max(100_000).default(10),
    /**
     * Client pool processes; 0 hosts every client inside the runner's own process. With
     * remotePools: the cores of this host offered as one more pool (default 0: remote pools only).
     */
    processes: z.number().int().nonnegative().max(64).optional(),
    rounds: positiveInt.default(5),
    fractionFit: z.number().gt(0).max(1).default(1),
    clientsPerRound: positiveInt.optional(),
    minFitClients: positiveInt.default(1),
    /**
     * "real": clients really take as long as they take (real nodes, heterogeneity's sleeps).
     * "virtual": nobody sleeps; each fit's arrival is simulated from the device profiles in
     * `virtual`, and rounds are decided in simulated time (scenarios/virtual-schema.ts).
     */
    clock: z.enum(["real", "virtual"]).default("real"),
    virtual: virtualBlockSchema.optional(),
    /** A round's deadline: wall-clock seconds on the real clock, simulated seconds on the virtual one. */
    roundDeadlineSeconds: z.number().positive().default(300),
    fit: z
      .object({
        epochs: positiveInt.default(1),
        batchSize: positiveInt.default(10),
        learningRate: z.number().positive().default(0.05),
        /** Decay the clients' learning rate over rounds (common/strategy/lr-schedule.ts). */
        learningRateSchedule: learningRateScheduleSchema.optional(),
        proximalMu: z.number().nonnegative().optional(),
      })
      .strict()
      .default({ epochs: 1, batchSize: 10, learningRate: 0.05 }),
    /**
     * The server's algorithm (scenarios/strategy-factory.ts). Each option applies only to the
     * strategies named beside it and is ignored by the others; unset options take the defaults
     * shown.
     */
    strategy: z
      .object({
        /** A built-in strategy or one registered with `defineStrategy`. */
        name: z.string().min(1).default("fedavg"),
        /** A registered strategy's own parameters (StrategyContext.options). */
        options: z.record(z.string(), z.unknown()).optional(),
        /** η applied to the aggregated delta. Default 1; 0.1 for fedadam/fedyogi/fedadagrad. */
        serverLearningRate: z.number().positive().optional(),
        /** fedavgm: server momentum β in [0, 1). Default 0.9. */
        momentum: z.number().min(0).lt(1).optional(),
        /** fedadam/fedyogi/fedadagrad: first-moment decay β1 in [0, 1). Default 0.9. */
        beta1: z.number().min(0).lt(1).optional(),
        /** fedadam/fedyogi: second-moment decay β2 in [0, 1). Default 0.99. */
        beta2: z.number().min(0).lt(1).optional(),
        /** fedadam/fedyogi/fedadagrad: adaptivity τ > 0 (v starts at τ²). Default 1e-3. */
        tau: z.number().positive().optional(),
        /** fedprox: μ ≥ 0 of the proximal term; required for fedprox here or as fit.proximalMu. */
        proximalMu: z.number().nonnegative().optional(),
        /** fedtrimmedavg: fraction β in [0, 0.5) trimmed from each end per coordinate. Default 0.2. */
        trimBeta: z.number().min(0).lt(0.5).optional(),
        /** krum/multikrum: f, Byzantine clients tolerated; rounds need n > 2f + 2. Default 1. */
        byzantineClients: z.number().int().nonnegative().optional(),
        /** multikrum: how many best-scored updates to average. Default n − f. */
        multiKrumM: positiveInt.optional(),
        /** Keep results that trained fewer epochs than asked. Default false; fedprox always keeps them. */
        acceptPartialWork: z.boolean().optional(),
        /**
         * fedbuff/fedasync: M, clients training at once. Default: the synchronous sample size
         * (clientsPerRound, else fractionFit × clients, at least minFitClients).
         */
        concurrency: positiveInt.optional(),
        /** fedbuff: K, updates per server step. Default: concurrency (K = M with no staleness is FedAvg). */
        bufferSize: positiveInt.optional(),
        /** fedasync: mixing weight α in (0, 1]. Default 0.6. */
        mixing: z.number().gt(0).max(1).optional(),
        /**
         * fedbuff/fedasync: staleness weight s(τ): constant, polynomial (1+τ)^(−a), or hinge
         * (1 up to τ = b, then 1/(a(τ−b)+1)). Default polynomial with a = 0.5 (1/√(1+τ)).
         */
        staleness: stalenessSchema.optional(),
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
    /** Per-client compute speed, latency and bandwidth, drawn from the seed (scenarios/sim/heterogeneity.ts). */
    heterogeneity: heterogeneitySchema.optional(),
    /** Who is online in which round: a pattern plus a schedule (scenarios/sim/availability.ts). */
    availability: availabilitySchema.optional(),
    /**
     * Sample this fraction more clients than a round needs and keep the first to finish
     * (0.3: 30% more); the rest are cancelled.
     */
    overSelection: z.number().nonnegative().max(10).optional(),
    /**
     * The coordinator's bounds on one client: updates claiming more examples, or with a larger L2
     * norm, are refused (EXAMPLES_OUT_OF_RANGE, NORM_TOO_LARGE). Defaults in server/client-limits.ts.
     */
    limits: z
      .object({
        maxExamplesPerClient: positiveInt.optional(),
        maxUpdateNorm: z.number().positive().optional(),
      })
      .strict()
      .optional(),
    /** Centralised evaluation on the test set every k rounds (and always after the last). */
    evaluation: z
      .object({
        everyRounds: positiveInt.default(1),
        /**
         * Federated evaluation: after aggregation, this fraction of the connected clients scores
         * the global model on a held-out part of its own data (`holdout` of each partition,
         * kept out of training).
         */
        federated: z
          .object({
            fraction: z.number().gt(0).max(1),
            holdout: z.number().gt(0).lt(1).default(0.1),
            everyRounds: positiveInt.default(1),
          })
          .strict()
          .optional(),
      })
      .strict()
      .default({ everyRounds: 1 }),
    /**
     * Real clients the run waits for, besides its virtual ones: `fedsim client` processes on
     * other machines. The coordinator then listens on host:port instead of loopback only.
     */
    external: z
      .object({
        clients: positiveInt.max(100_000),
        host: z.string().min(1).default("0.0.0.0"),
        port: z.number().int().min(0).max(65_535).default(8080),
        /** Shared admission token; default: a fresh one printed at start. */
        token: z.string().min(MIN_TOKEN_CHARS).max(MAX_TOKEN_CHARS).optional(),
        /** How long the run waits for them before it says so and carries on without the missing ones. */
        waitSeconds: z.number().positive().default(300),
      })
      .strict()
      .optional(),
    /** Pools on other hosts (`fedsim pool --server URL --run ID`) host the virtual clients. */
    remotePools: remotePoolsSchema.optional(),
    attackers: attackersSchema.optional(),
    stragglers: stragglersSchema.optional(),
    sweep: sweepSchema.optional(),
    expect: expectSchema.optional(),
  })
  .strict();

export type Scenario = z.infer<typeof scenarioSchema>;
type SchemaInput = z.input<typeof scenarioSchema>;
/** A scenario as written: `strategy` and `dataset` may be just a name, like `model`. */
export type ScenarioInput = Omit<SchemaInput, "strategy" | "dataset"> & {
  strategy?: SchemaInput["strategy"] | NonNullable<SchemaInput["strategy"]>["name"];
  dataset?: SchemaInput["dataset"] | NonNullable<SchemaInput["dataset"]>["name"];
};

/** `strategy: fedprox` and `dataset: mnist` mean `{ name: ... }`, as `model: mnist-cnn` names a model. */
function expandShorthand(raw: unknown): unknown {
  try {
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return raw;
    const record = raw as Record<string, unknown>;
    const named = (key: string) => (typeof record[key] === "string" ? { [key]: { name: record[key] } } : {});
    return { ...record, ...named("strategy"), ...named("dataset") };
  } catch {
    // A hostile object (a throwing getter) is left for the schema to refuse.
    return raw;
  }
}

/**
 * Validates a scenario written in code, with its defaults filled in; throws INVALID_SCENARIO with
 * one line per problem. Registered names must be defined before this is called.
 */
export function parseScenario(input: ScenarioInput, source = "scenario"): Scenario {
  return validateScenario(input, source);
}

/** `parseScenario` for input of unknown shape: a parsed file, a checkpoint, an IPC message. */
export function validateScenario(raw: unknown, source = "scenario"): Scenario {
  const input = expandShorthand(raw);
  const parsed = safeParseUntrusted(scenarioSchema, input);
  if (!parsed.success) {
    throw new FedsimError(ErrorCode.INVALID_SCENARIO, `${source}: invalid scenario`, [
      ...describeIssues(parsed.error, scenarioSchema, input, `${source}: `),
      // Reported with the schema's problems, so one pass over the file shows every mistake.
      ...nameProblems(namesOf(input), source),
    ]);
  }
  const s = parsed.data;
  const problems: string[] = [];
  // Checked here, before any backend or data loads, so a typo costs no wait.
  problems.push(
    ...nameProblems(
      {
        strategy: s.strategy.name,
        dataset: s.dataset.name,
        client: s.client,
        model: s.initModel ? undefined : s.model,
      },
      source,
    ),
  );
  problems.push(...expectationProblems(s.expect, `${source}: expect`));
  for (const [name, expect] of Object.entries(s.sweep?.expect ?? {})) {
    problems.push(...expectationProblems(expect, `${source}: sweep.expect.${name}`));
  }
  const allClients = s.clients + (s.external?.clients ?? 0);
  if (s.minFitClients > allClients)
    problems.push(`${source}: minFitClients: ${s.minFitClients} exceeds clients (${allClients})`);
  if (s.clientsPerRound !== undefined && s.clientsPerRound > s.clients) {
    problems.push(`${source}: clientsPerRound: ${s.clientsPerRound} exceeds clients (${s.clients})`);
  }
  if (s.partition.kind === "shards" && s.dataset.name === "synthetic") {
    problems.push(`${source}: partition: use "natural" for synthetic data`);
  }
  problems.push(...roleProblems(s, source));
  problems.push(...sweepOverrideProblems(s, source, validateScenario));
  problems.push(...virtualClockProblems(s, source));
  problems.push(...remotePoolsProblems(s, source));
  problems.push(...heterogeneityProblems(s.heterogeneity, `${source}: heterogeneity`));
  problems.push(...availabilityProblems(s.availability, s.clients, `${source}: availability`));
  if ((s.overSelection ?? 0) > 0 && s.privacy?.dp) {
    // Keeping the fastest clients is not the uniform sample the accountant's amplification assumes.
    problems.push(
      `${source}: overSelection: cannot be combined with privacy.dp (the RDP accountant assumes uniformly sampled participants)`,
    );
  }
  if (s.evaluation.federated && (s.privacy?.dp || s.privacy?.secagg)) {
    // Each answer is one client's loss, accuracy and example count, in the clear and unaccounted.
    problems.push(
      `${source}: evaluation.federated: cannot be combined with privacy.dp or privacy.secagg (each client's evaluation would reach the coordinator unprotected)`,
    );
  }
  if (problems.length > 0)
    throw new FedsimError(ErrorCode.INVALID_SCENARIO, `${source}: invalid scenario`, problems);
  return s;
}

/** A bound no run can meet (gte above lte) is a typo, not an expectation. */
function expectationProblems(expect: Expectations | undefined, where: string): string[] {
  return Object.entries(expect ?? {}).flatMap(([name, bound]) =>
    bound?.gte !== undefined && bound.lte !== undefined && bound.gte > bound.lte
      ? [`${where}.${name}: gte ${bound.gte} is above lte ${bound.lte}; no run can meet both`]
      : [],
  );
}

/** The registered-name fields of a scenario, read as far as they are strings. */
interface ScenarioNames {
  strategy?: string | undefined;
  dataset?: string | undefined;
  client?: string | undefined;
  model?: string | undefined;
}

/** The names in input the schema refused, for nameProblems; anything else is the schema's to report. */
function namesOf(input: unknown): ScenarioNames {
  const text = (v: unknown) => (typeof v === "string" ? v : undefined);
  const field = (v: unknown, key: string) =>
    typeof v === "object" && v !== null ? (v as Record<string, unknown>)[key] : undefined;
  try {
    return {
      strategy: text(field(field(input, "strategy"), "name")),
      dataset: text(field(field(input, "dataset"), "name")),
      client: text(field(input, "client")),
      model: field(input, "initModel") === undefined ? text(field(input, "model")) : undefined,
    };
  } catch {
    // A hostile object (a throwing getter) is the schema's to refuse.
    return {};
  }
}

/**
 * Names that must be built in or registered in this process by the time the scenario is
 * validated. Not in the zod schema: a pool process re-reads the scenario without the strategy
 * and model definitions it never uses.
 */
function nameProblems(names: ScenarioNames, source: string): string[] {
  const problems: string[] = [];
  const check = (kind: DefinitionKind, field: string, name: string | undefined) => {
    if (name === undefined) return;
    const known = knownNames(kind);
    if (known.includes(name)) return;
    const guess = didYouMean(name, known);
    const define = `define${kind[0].toUpperCase()}${kind.slice(1)}`;
    const choices =
      known.length > 0
        ? `; choose one of ${known.join(", ")}, or register it with ${define}`
        : `; register it with ${define}`;
    problems.push(`${source}: ${field}: unknown ${kind} "${name}"${guess || choices}`);
  };
  check("strategy", "strategy.name", names.strategy);
  check("dataset", "dataset.name", names.dataset);
  check("client", "client", names.client);
  check("model", "model", names.model);
  return problems;
}

/** Cross-field checks of the attackers and sweep blocks. */
function roleProblems(s: Scenario, source: string): string[] {
  const problems: string[] = [];
  const attackers = s.attackers;
  if (attackers) {
    const where = `${source}: attackers`;
    if (Array.isArray(attackers.clients)) {
      for (const index of attackers.clients.filter((i) => i >= s.clients)) {
        problems.push(`${where}.clients: index ${index} is outside [0, ${s.clients})`);
      }
    } else if (attackers.clients.count > s.clients) {
      problems.push(`${where}.clients.count: ${attackers.clients.count} exceeds clients (${s.clients})`);
    }
    const uses = {
      scale: ["scale", "signFlipScale"],
      stddev: ["gaussian"],
      value: ["sameValue"],
    } as const;
    for (const [field, attacks] of Object.entries(uses)) {
      const given = attackers[field as keyof typeof uses] !== undefined;
      if (given && !(attacks as readonly string[]).includes(attackers.attack)) {
        problems.push(`${where}.${field}: only used by ${attacks.join(" and ")}, not by ${attackers.attack}`);
      }
    }
  }
  const strategies = s.sweep?.strategies ?? [];
  const repeated = strategies.filter((name, i) => strategies.indexOf(name) !== i);
  if (repeated.length > 0) problems.push(`${source}: sweep.strategies: ${repeated.join(", ")} listed twice`);
  for (const name of Object.keys(s.sweep?.expect ?? {})) {
    if (!strategies.includes(name)) {
      problems.push(
        `${source}: sweep.expect.${name}: not one of sweep.strategies (${strategies.join(", ")})`,
      );
    }
  }
  return problems;
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
  const scenario = validateScenario(raw, file);
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
    ...(scenario.virtual && typeof scenario.virtual.devices === "object" && "file" in scenario.virtual.devices
      ? {
          virtual: {
            ...scenario.virtual,
            devices: { file: resolve(scenario.virtual.devices.file) as string },
          },
        }
      : {}),
  };
}
