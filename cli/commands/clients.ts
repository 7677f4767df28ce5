import { fork } from "node:child_process";
import { existsSync } from "node:fs";
import os from "node:os";
import { Command, Option } from "commander";
import { z } from "zod";
import { ClientNode } from "../../client/node.js";
import { ModelWorkbench } from "../../client/workbench.js";
import { type Identity, loadIdentity } from "../../common/crypto/identity.js";
import { describeError, ErrorCode, FedsimError, isFedsimError } from "../../common/errors.js";
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
import { list, num, parseOptions } from "../options.js";
import { nodeIdentityPath } from "./keygen.js";

const schema = z.object({
  ...nodeOptionsShape,
  dataset: z.string().min(1).default("mnist"),
  count: z.number().int().positive().max(1000),
  identityDir: z.string().optional(),
  processes: z.number().int().nonnegative().optional(),
  /** Internal: the node indices a worker process hosts. */
  nodes: z.array(z.string().regex(/^\d+$/)).optional(),
});

type Options = z.infer<typeof schema>;

/**
 * `fedsim clients`: N client nodes on the N partitions of a named dataset, for trying a real
 * coordinator on one machine. Node i trains exactly as `fedsim client --partition i/N` would.
 */
export function clientsCommand(): Command {
  const command = new Command("clients")
    .description("start N client nodes on the N partitions of a dataset; one status line per node per round")
    .requiredOption("--count <n>", "how many nodes (partitions)", num)
    .option(
      "--dataset <name>",
      "mnist | fashion-mnist | synthetic, or one a --register module defines",
      "mnist",
    )
    .option(
      "--processes <n>",
      "processes the nodes are spread over, each sharing one model between its nodes; 0 keeps them all in this process (default: min(count, cores))",
      num,
    )
    .option(
      "--identity-dir <dir>",
      "node i signs with DIR/node-i.key, as `fedsim keygen --dir DIR --count N` writes them with their allowlist",
    )
    .addOption(
      new Option("--nodes <i,j>", "internal: the nodes a worker process hosts").argParser(list).hideHelp(),
    );
  return addNodeOptions(command).action(async (raw: unknown) => {
    const o = parseOptions(schema, raw);
    // Every node's key, checked here once rather than failing in each worker process.
    if (o.nodes === undefined) for (let i = 0; i < o.count; i++) await nodeIdentity(o, i);
    const processes = Math.min(o.processes ?? os.cpus().length, o.count);
    if (o.nodes !== undefined || processes === 0) {
      const indices = o.nodes?.map(Number) ?? Array.from({ length: o.count }, (_, i) => i);
      await hostNodes(o, indices);
      return;
    }
    await spreadOverProcesses(processes, o.count);
  });
}

/** Forks this command once per process, each with its share of the nodes; fails if any of them fails. */
async function spreadOverProcesses(processes: number, count: number): Promise<void> {
  const cli = process.argv[1];
  const args = process.argv.slice(2);
  const children = Array.from({ length: processes }, (_, p) => {
    const nodes = Array.from({ length: count }, (_, i) => i).filter((i) => i % processes === p);
    return fork(cli, [...args, "--nodes", nodes.join(",")], {
      stdio: "inherit",
      env: {
        ...process.env,
        // The processes share the machine's cores; more oneDNN threads than that only queue.
        FEDSIM_NATIVE_THREADS:
          process.env.FEDSIM_NATIVE_THREADS ?? String(Math.max(1, Math.floor(os.cpus().length / processes))),
      },
    });
  });
  const forward = (signal: NodeJS.Signals) => () => {
    for (const child of children) if (child.exitCode === null) child.kill(signal);
  };
  process.once("SIGINT", forward("SIGINT"));
  process.once("SIGTERM", forward("SIGTERM"));
  const codes = await Promise.all(
    children.map(
      (child) => new Promise<number>((resolve) => child.once("exit", (code) => resolve(code ?? 1))),
    ),
  );
  const failed = codes.filter((c) => c !== 0).length;
  if (failed > 0) {
    throw new FedsimError(
      ErrorCode.CLIENT_DISCONNECTED,
      `${failed} of ${processes} node process(es) failed; see their lines above`,
    );
  }
}

/** Runs the given nodes in this process, sharing one model; resolves when all are done. */
async function hostNodes(o: Options, indices: number[]): Promise<void> {
  const quietLog = nodeOutput(o).log;
  const client = await registeredClientLogic(o);
  await initBackend(o.backend, quietLog);
  const parts = await namedPartitions(o, o.count);
  const ca = await readCa(o.ca);
  const identities = await Promise.all(indices.map((index) => nodeIdentity(o, index)));
  const workbench = new ModelWorkbench(client ? { client } : {});
  const nodes = indices.map((index, k) => {
    const identity = identities[k];
    const { log, onRound } = nodeOutput(o, index);
    log(`${parts[index].n} training examples (partition ${index}/${o.count})`);
    return new ClientNode({
      url: o.server,
      data: parts[index],
      workbench,
      label: `node-${index}`,
      seed: deriveSeed(o.seed, "client", `${index}/${o.count}`),
      log,
      retry: retryPolicy(o),
      ...(onRound ? { onRound } : {}),
      ...(o.token ? { token: o.token } : {}),
      ...(ca ? { ca } : {}),
      ...(identity ? { identity } : {}),
    });
  });
  const closeAll = () => {
    for (const node of nodes) node.close();
  };
  process.once("SIGINT", closeAll);
  process.once("SIGTERM", closeAll);
  const ends = await Promise.allSettled(nodes.map((node) => node.finished));
  const reasons = ends.flatMap((end) => (end.status === "rejected" ? [end.reason as unknown] : []));
  const failures = ends.flatMap((end, k) =>
    end.status === "rejected" ? [`node ${indices[k]}: ${describeError(end.reason)}`] : [],
  );
  if (failures.length > 0) {
    const first = reasons[0];
    throw new FedsimError(
      isFedsimError(first) ? first.code : ErrorCode.CLIENT_DISCONNECTED,
      `${failures.length} of ${nodes.length} node(s) stopped before the run ended`,
      failures,
    );
  }
  quietLog(`clients: ${nodes.length} node(s) done`);
}

/** Node `index`'s identity from `--identity-dir`, if one is given; a missing file says how to make it. */
async function nodeIdentity(o: Options, index: number): Promise<Identity | undefined> {
  if (o.identityDir === undefined) return undefined;
  const file = nodeIdentityPath(o.identityDir, index);
  if (!existsSync(file)) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `--identity-dir: ${file} does not exist; make the nodes' identities and their allowlist with: fedsim keygen --dir ${o.identityDir} --count ${o.count}`,
    );
  }
  return loadIdentity(file);
}
