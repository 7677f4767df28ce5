import { Command } from "commander";
import { z } from "zod";
import { ClientNode } from "../../client/node.js";
import { ModelWorkbench } from "../../client/workbench.js";
import { loadIdentity } from "../../common/crypto/identity.js";
import type { Dataset } from "../../common/data/dataset.js";
import { parsePartitionSpec } from "../../common/data/partition.js";
import { loadTrainingFiles } from "../../common/data/registry.js";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { deriveSeed } from "../../common/rng.js";
import { initBackend } from "../../common/tf/backend.js";
import {
  addNodeOptions,
  namedPartitions,
  nodeOptionsShape,
  nodeOutput,
  readCa,
  registeredClientLogic,
  retryPolicy,
} from "../node-options.js";
import { parseOptions } from "../options.js";

const schema = z
  .object({
    ...nodeOptionsShape,
    data: z.string().optional(),
    format: z.enum(["idx", "csv"]).default("idx"),
    partition: z.string().optional(),
    identity: z.string().optional(),
    declareExamples: z.boolean().optional(),
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
  const command = new Command("client")
    .description("run a client node that trains on its own data for a coordinator")
    .option(
      "--data <dir>",
      "this node's own training data: IDX train-images/train-labels, or CSV (train.csv or one file); no test split needed",
    )
    .option("--format <fmt>", "idx | csv", "idx")
    .option(
      "--dataset <name>",
      "train on a partition of a named dataset instead: mnist, fashion-mnist, synthetic, or one a --register module defines",
    )
    .option("--partition <i/n>", "which partition, 0-based: 3/10")
    .option("--identity <file>", "signing identity from `fedsim keygen`")
    .option(
      "--declare-examples",
      "tell the coordinator this node's training-set size at hello (it then refuses larger counts; leaks the size, see docs/PRIVACY.md)",
    );
  return addNodeOptions(command).action(async (raw: unknown) => {
    const o = parseOptions(schema, raw);
    const { log, onRound } = nodeOutput(o);
    const client = await registeredClientLogic(o);
    await initBackend(o.backend, log);
    let data: Dataset;
    if (o.data) {
      data = await loadTrainingFiles(o.format, o.data);
    } else {
      const { index, count } = parsePartitionSpec(o.partition!);
      data = (await namedPartitions(o, count))[index];
    }
    log(`client: ${data.n} training examples`);
    const identity = o.identity ? await loadIdentity(o.identity) : undefined;
    const ca = await readCa(o.ca);
    const node = new ClientNode({
      url: o.server,
      data,
      workbench: new ModelWorkbench(client ? { client } : {}),
      seed: deriveSeed(o.seed, "client", o.partition ?? o.data ?? ""),
      log,
      retry: retryPolicy(o),
      ...(onRound ? { onRound } : {}),
      ...(identity ? { identity } : {}),
      ...(o.token ? { token: o.token } : {}),
      ...(ca ? { ca } : {}),
      ...(o.declareExamples ? { declareExamples: true } : {}),
    });
    process.once("SIGINT", () => node.close());
    try {
      await node.ready;
    } catch (err) {
      if (err instanceof FedsimError) throw err;
      throw new FedsimError(
        ErrorCode.CLIENT_DISCONNECTED,
        `could not join ${o.server}: ${(err as Error).message}`,
      );
    }
    // Resolves when the coordinator ends the run (or Ctrl-C); rejects when the retries run out.
    await node.finished;
    log(`client: done after ${node.roundsTrained} round(s)`);
  });
}
