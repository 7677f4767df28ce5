import os from "node:os";
import { Command } from "commander";
import { z } from "zod";
import { runPoolHost } from "../../scenarios/pool-host.js";
import { parseOptions } from "../options.js";

const schema = z.object({
  server: z.url({ protocol: /^https?$/ }),
  run: z.string().min(1).max(128),
  token: z.string().min(1),
  connect: z.url({ protocol: /^https?$/ }).optional(),
  cores: z.coerce.number().int().min(1).max(256).default(os.availableParallelism()),
  name: z.string().max(128).default(os.hostname()),
  register: z.array(z.string().min(1)).default([]),
});

/** `fedsim pool`: offer this host's cores to a running simulation (scenarios/pool-host.ts). */
export function poolCommand(): Command {
  return new Command("pool")
    .description("offer this host's cores to a running `fedsim run` whose scenario has remotePools")
    .requiredOption("--server <url>", "the coordinator's address, as the run printed it")
    .requiredOption("--run <id>", "the run id the run printed; a pool never joins another run")
    .option("--token <token>", "the run's admission token (default: $FEDSIM_TOKEN)")
    .option("--connect <url>", "where the workers connect: an edge of the coordinator (default: --server)")
    .option("--cores <n>", "cores to offer: one worker process each (default: all of this host's)")
    .option("--name <name>", "this pool's name in the run's logs (default: the host name)")
    .option(
      "--register <module>",
      "a .js/.ts module defining the run's client or dataset; imported only if the run names the same file content (repeatable)",
      (value: string, previous: string[] = []) => [...previous, value],
    )
    .action(async (raw: Record<string, unknown>) => {
      const o = parseOptions(schema, { ...raw, token: raw.token ?? process.env.FEDSIM_TOKEN });
      const log = (line: string) => process.stdout.write(`${line}\n`);
      await runPoolHost({
        server: o.server,
        runId: o.run,
        token: o.token,
        ...(o.connect ? { connect: o.connect } : {}),
        cores: o.cores,
        name: o.name,
        register: o.register,
        log,
      });
    });
}
