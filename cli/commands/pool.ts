import { Command } from "commander";
import { z } from "zod";
import { startClientPool } from "../../client/pool.js";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { initBackend } from "../../common/tf/backend.js";
import { scenarioSchema } from "../../scenarios/schema.js";

const poolSpecSchema = z.object({
  url: z.string(),
  token: z.string(),
  scenario: scenarioSchema,
  clientIndices: z.array(z.number().int().nonnegative()),
  backend: z.enum(["auto", "gpu", "node", "wasm", "cpu"]),
});

/** Internal: a worker process that hosts some of a run's virtual clients (forked by `fedsim run`). */
export function poolCommand(): Command {
  return new Command("pool")
    .description("(internal) host virtual clients for `fedsim run`")
    .action(async () => {
      const parsed = poolSpecSchema.safeParse(JSON.parse(process.env.FEDSIM_POOL ?? "null"));
      if (!parsed.success)
        throw new FedsimError(ErrorCode.INVALID_CONFIG, "pool: FEDSIM_POOL is missing or invalid");
      const spec = parsed.data;
      await initBackend(spec.backend);
      const nodes = await startClientPool({
        url: spec.url,
        scenario: spec.scenario,
        clientIndices: spec.clientIndices,
        token: spec.token,
        log: (line) => {
          if (/failed|refused|error/i.test(line)) process.stderr.write(`${line}\n`);
        },
      });
      await new Promise<void>((resolve) => {
        const check = setInterval(() => {
          if (nodes.every((n) => !n.socket.active)) {
            clearInterval(check);
            resolve();
          }
        }, 500);
        // Forked by `fedsim run`: if that process dies (even by kill -9), the IPC channel closes.
        process.once("disconnect", () => {
          for (const n of nodes) n.close();
          clearInterval(check);
          resolve();
        });
        process.once("SIGTERM", () => {
          for (const n of nodes) n.close();
          clearInterval(check);
          resolve();
        });
      });
    });
}
