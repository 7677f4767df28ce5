import { readFile } from "node:fs/promises";
import { Command } from "commander";
import { z } from "zod";
import { ClientNode } from "../../client/node.js";
import { ModelWorkbench } from "../../client/workbench.js";
import { loadIdentity } from "../../common/crypto/identity.js";
import type { Dataset } from "../../common/data/dataset.js";
import { parsePartitionSpec, partitionDataset } from "../../common/data/partition.js";
import { loadDataset } from "../../common/data/registry.js";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { registeredClient, registeredNames } from "../../common/registry.js";
import { deriveSeed } from "../../common/rng.js";
import { initBackend } from "../../common/tf/backend.js";
import { importModule } from "../../scenarios/load.js";
import { BACKEND_NAMES } from "../../scenarios/schema.js";
import { num, parseOptions, stdoutLog } from "../options.js";

const schema = z
  .object({
    server: z.url(),
    data: z.string().optional(),
    format: z.enum(["idx", "csv"]).default("idx"),
    dataset: z.string().min(1).optional(),
    dataDir: z.string().optional(),
    partition: z.string().optional(),
    partitionScheme: z.enum(["iid", "shards", "dirichlet"]).default("iid"),
    alpha: z.number().positive().default(0.5),
    seed: z.number().int().nonnegative().default(0),
    identity: z.string().optional(),
    token: z.string().optional(),
    ca: z.string().optional(),
    backend: z.enum(BACKEND_NAMES).default("auto"),
    declareExamples: z.boolean().optional(),
    register: z.array(z.string()).default([]),
    client: z.string().optional(),
  })
  .superRefine((o, ctx) => {
    if ((o.data === undefined) === (o.dataset === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: ["data"],
        message: "give either --data DIR or --dataset NAME --partition i/n",
      });
    }
    if (o.dataset !== undefined && o.partition === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["partition"],
        message: "--dataset needs --partition i/n (e.g. 3/10)",
      });
    }
  });

export function clientCommand(): Command {
  return new Command("client")
    .description("run a client node that trains on its own data for a coordinator")
    .requiredOption("--server <url>", "coordinator URL, e.g. http://10.0.0.5:8080")
    .option("--data <dir>", "this node's own data: a directory of IDX files (or CSV with --format csv)")
    .option("--format <fmt>", "idx | csv")
    .option(
      "--dataset <name>",
      "train on a partition of a named dataset instead: mnist, fashion-mnist, synthetic, or one a --register module defines",
    )
    .option("--data-dir <dir>", "where the named dataset's files are")
    .option("--partition <i/n>", "which partition, 0-based: 3/10")
    .option("--partition-scheme <kind>", "iid | shards | dirichlet")
    .option("--alpha <a>", "Dirichlet concentration", num)
    .option("--seed <n>", "partition and training seed (same on every node)", num)
    .option("--identity <file>", "signing identity from `fedsim keygen`")
    .option("--token <token>", "shared token, if the coordinator uses one")
    .option("--ca <file>", "trust this CA certificate for TLS")
    .option("--backend <name>", "auto | gpu | node | webgpu | native | wasm | cpu")
    .option(
      "--declare-examples",
      "tell the coordinator this node's training-set size at hello (it then refuses larger counts; leaks the size, see docs/PRIVACY.md)",
    )
    .option(
      "--register <module>",
      "import this .js/.ts module first, for the clients and datasets it defines (repeatable)",
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .option("--client <name>", "train with this client logic (defineClient) instead of fedsim's own")
    .action(async (raw: unknown) => {
      const o = parseOptions(schema, raw);
      const log = stdoutLog();
      for (const file of o.register) await importModule(file);
      const client = o.client === undefined ? undefined : registeredClient(o.client);
      if (o.client !== undefined && !client) {
        throw new FedsimError(
          ErrorCode.INVALID_CONFIG,
          `--client: "${o.client}" is not defined; pass the module that calls defineClient with --register (defined: ${registeredNames("client").join(", ") || "none"})`,
        );
      }
      await initBackend(o.backend, log);
      let data: Dataset;
      if (o.data) {
        data = (await loadDataset({ name: o.format, path: o.data })).train;
      } else {
        const { index, count } = parsePartitionSpec(o.partition!);
        const train = (await loadDataset({ name: o.dataset!, ...(o.dataDir ? { dataDir: o.dataDir } : {}) }))
          .train;
        const scheme =
          o.partitionScheme === "shards"
            ? { kind: "shards" as const, shardsPerClient: 2 }
            : o.partitionScheme === "dirichlet"
              ? { kind: "dirichlet" as const, alpha: o.alpha }
              : { kind: "iid" as const };
        data = partitionDataset(train, count, scheme, o.seed)[index];
      }
      log(`client: ${data.n} training examples`);
      const identity = o.identity ? await loadIdentity(o.identity) : undefined;
      const ca = o.ca ? await readFile(o.ca, "utf8") : undefined;
      const node = new ClientNode({
        url: o.server,
        data,
        workbench: new ModelWorkbench(client ? { client } : {}),
        seed: deriveSeed(o.seed, "client", o.partition ?? o.data ?? ""),
        log,
        ...(identity ? { identity } : {}),
        ...(o.token ? { token: o.token } : {}),
        ...(ca ? { ca } : {}),
        ...(o.declareExamples ? { declareExamples: true } : {}),
      });
      try {
        await node.ready;
      } catch (err) {
        if (err instanceof FedsimError) throw err;
        throw new FedsimError(
          ErrorCode.CLIENT_DISCONNECTED,
          `could not join ${o.server}: ${(err as Error).message}`,
        );
      }
      process.once("SIGINT", () => node.close());
      await new Promise<void>((resolve) => {
        const t = setInterval(() => {
          if (!node.socket.active) {
            clearInterval(t);
            resolve();
          }
        }, 500);
      });
      log(`client: done after ${node.roundsTrained} round(s)`);
    });
}
