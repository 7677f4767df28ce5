import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { z } from "zod";
import type { RetryPolicy } from "../client/reconnect.js";
import { formatRoundReport, type RoundReport } from "../client/round-report.js";
import type { ClientDefinition } from "../common/client-app.js";
import type { Dataset } from "../common/data/dataset.js";
import { partitionDataset } from "../common/data/partition.js";
import { loadDataset } from "../common/data/registry.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { registeredClient, registeredNames } from "../common/registry.js";
import { importModule } from "../scenarios/load.js";
import { BACKEND_NAMES } from "../scenarios/schema.js";
import { num } from "./options.js";

/**
 * What `fedsim client` and `fedsim clients` share: how a node reaches the coordinator, how long
 * it keeps trying, what it prints, and how a partition of a named dataset is cut.
 */
export const NODE_DEFAULTS = {
  maxRetries: 30,
  maxWait: 10,
  partitionScheme: "iid",
  alpha: 0.5,
  seed: 0,
  backend: "auto",
} as const;

export const nodeOptionsShape = {
  server: z.url(),
  dataset: z.string().min(1).optional(),
  dataDir: z.string().optional(),
  partitionScheme: z.enum(["iid", "shards", "dirichlet"]).default(NODE_DEFAULTS.partitionScheme),
  alpha: z.number().positive().default(NODE_DEFAULTS.alpha),
  seed: z.number().int().nonnegative().default(NODE_DEFAULTS.seed),
  token: z.string().optional(),
  ca: z.string().optional(),
  backend: z.enum(BACKEND_NAMES).default(NODE_DEFAULTS.backend),
  maxRetries: z.number().int().nonnegative().default(NODE_DEFAULTS.maxRetries),
  maxWait: z.number().positive().default(NODE_DEFAULTS.maxWait),
  quiet: z.boolean().optional(),
  json: z.boolean().optional(),
  register: z.array(z.string()).default([]),
  client: z.string().optional(),
};

type NodeOptions = z.infer<z.ZodObject<typeof nodeOptionsShape>>;

/** The options both commands take, with their defaults shown in --help. */
export function addNodeOptions(command: Command): Command {
  return command
    .requiredOption("--server <url>", "coordinator URL, e.g. http://10.0.0.5:8080")
    .option("--data-dir <dir>", "where the named dataset's files are")
    .option(
      "--partition-scheme <kind>",
      "iid | shards | dirichlet (same on every node)",
      NODE_DEFAULTS.partitionScheme,
    )
    .option("--alpha <a>", "Dirichlet concentration", num, NODE_DEFAULTS.alpha)
    .option("--seed <n>", "partition and training seed (same on every node)", num, NODE_DEFAULTS.seed)
    .option("--token <token>", "shared token, if the coordinator uses one")
    .option("--ca <file>", "trust this CA certificate for TLS")
    .option("--backend <name>", "auto | gpu | node | webgpu | native | wasm | cpu", NODE_DEFAULTS.backend)
    .option(
      "--max-retries <n>",
      "give up after this many failed tries in a row to reach the coordinator (exit 1)",
      num,
      NODE_DEFAULTS.maxRetries,
    )
    .option(
      "--max-wait <seconds>",
      "longest wait between two tries (waits double from 0.5 s up to this)",
      num,
      NODE_DEFAULTS.maxWait,
    )
    .option("--quiet", "no per-round lines and no progress messages; errors still print")
    .option("--json", "per-round lines as JSON objects (one per line, on stdout)")
    .option(
      "--register <module>",
      "import this .js/.ts module first, for the clients and datasets it defines (repeatable)",
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option("--client <name>", "train with this client logic (defineClient) instead of fedsim's own");
}

/** Imports the `--register` modules, then the `--client` logic they define (undefined: fedsim's own). */
export async function registeredClientLogic(
  o: Pick<NodeOptions, "register" | "client">,
): Promise<ClientDefinition | undefined> {
  for (const file of o.register) await importModule(file);
  if (o.client === undefined) return undefined;
  const client = registeredClient(o.client);
  if (!client) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `--client: "${o.client}" is not defined; pass the module that calls defineClient with --register (defined: ${registeredNames("client").join(", ") || "none"})`,
    );
  }
  return client;
}

export function retryPolicy(o: Pick<NodeOptions, "maxRetries" | "maxWait">): RetryPolicy {
  return { maxRetries: o.maxRetries, maxWaitSeconds: o.maxWait };
}

/**
 * Per-round lines on stdout (plain or JSON), progress on stderr; `--quiet` keeps only errors.
 * `node` names the node among several (`fedsim clients`): a "node i: " prefix, or a `node` field.
 */
export function nodeOutput(
  o: Pick<NodeOptions, "quiet" | "json">,
  node?: number,
): { log: (line: string) => void; onRound?: (report: RoundReport) => void } {
  const prefix = node === undefined ? "" : `node ${node}: `;
  const log = (line: string) => {
    if (o.quiet && !/fail|refused|error|gave up/i.test(line)) return;
    process.stderr.write(`${prefix}${line}\n`);
  };
  if (o.quiet) return { log };
  const onRound = (report: RoundReport) => {
    const line = o.json
      ? JSON.stringify(node === undefined ? report : { node, ...report })
      : `${prefix}${formatRoundReport(report)}`;
    process.stdout.write(`${line}\n`);
  };
  return { log, onRound };
}

/** The `count` partitions of a named dataset's training set, cut the same way on every node. */
export async function namedPartitions(
  o: Pick<NodeOptions, "dataset" | "dataDir" | "partitionScheme" | "alpha" | "seed">,
  count: number,
): Promise<Dataset[]> {
  const name = o.dataset ?? "mnist";
  const train = (await loadDataset({ name, ...(o.dataDir ? { dataDir: o.dataDir } : {}) })).train;
  const scheme =
    o.partitionScheme === "shards"
      ? { kind: "shards" as const, shardsPerClient: 2 }
      : o.partitionScheme === "dirichlet"
        ? { kind: "dirichlet" as const, alpha: o.alpha }
        : { kind: "iid" as const };
  return partitionDataset(train, count, scheme, o.seed);
}

export async function readCa(file: string | undefined): Promise<string | undefined> {
  return file ? readFile(file, "utf8") : undefined;
}
