import { Command } from "commander";
import { z } from "zod";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { initBackend } from "../../common/tf/backend.js";
import { importModule } from "../../scenarios/load.js";
import { BACKEND_NAMES, scenarioSchema } from "../../scenarios/schema.js";
import { simulatedPoolIdentity } from "../../scenarios/sim/pool.js";
import { servePoolCommands, startControlledPool } from "../../scenarios/sim/pool-control.js";

/** Read first: the modules to import before the scenario's registered names can be checked. */
const modulesSchema = z.object({ modules: z.array(z.string()).default([]) });

const poolSpecSchema = z.object({
  url: z.string(),
  token: z.string(),
  scenario: scenarioSchema,
  /** A list, or a stride (start, start + step, … count of them) for pools of many clients. */
  clientIndices: z.union([
    z.array(z.number().int().nonnegative()),
    z.object({
      start: z.number().int().nonnegative(),
      step: z.number().int().positive(),
      count: z.number().int().nonnegative(),
    }),
  ]),
  backend: z.enum(BACKEND_NAMES),
  /** Host the clients over one pool session (default) or one socket each (envelopes, SecAgg). */
  session: z.boolean().default(true),
  /** The pool host this worker belongs to (a remote pool: scenarios/pool-host.ts). */
  poolHost: z.string().max(64).optional(),
});

/**
 * Internal: a worker process that hosts some of a run's virtual clients (forked by `fedsim run`,
 * and by `fedsim pool` on other hosts). It obeys the pool commands of scenarios/sim/pool-control.ts
 * arriving over IPC (`beforeRound`, `kill`, `revive`, `setNetworkScale`, `host`), answering each
 * with `{ type: "ack", id, ... }`.
 */
export function poolWorkerCommand(): Command {
  return new Command("pool-worker")
    .description("(internal) host virtual clients for `fedsim run` or `fedsim pool`")
    .action(async () => {
      const raw: unknown = JSON.parse(process.env.FEDSIM_POOL ?? "null");
      const modules = modulesSchema.safeParse(raw);
      if (!modules.success)
        throw new FedsimError(ErrorCode.INVALID_CONFIG, "pool: FEDSIM_POOL is missing or invalid");
      // The runner's process registered definitions from these; this process must see them too.
      for (const file of modules.data.modules) await importModule(file);
      const parsed = poolSpecSchema.safeParse(raw);
      if (!parsed.success)
        throw new FedsimError(ErrorCode.INVALID_CONFIG, "pool: FEDSIM_POOL is missing or invalid");
      const spec = parsed.data;
      await initBackend(spec.backend);
      const pool = await startControlledPool({
        url: spec.url,
        scenario: spec.scenario,
        clientIndices: hostedIndices(spec.clientIndices),
        token: spec.token,
        ...(spec.session ? { session: { identity: simulatedPoolIdentity(spec.scenario.seed) } } : {}),
        ...(spec.poolHost ? { auth: { poolHost: spec.poolHost } } : {}),
        log: (line) => {
          if (/failed|refused|error/i.test(line)) process.stderr.write(`${line}\n`);
        },
      });
      const stopServing = servePoolCommands(pool.controller, process);
      // The runner waits for this before its first command: IPC messages sent before the
      // listener above existed would be lost.
      process.send?.({ type: "ready" });
      await new Promise<void>((resolve) => {
        const finish = () => {
          pool.close();
          stopServing();
          clearInterval(check);
          resolve();
        };
        // Clients the scenario took offline will come back; only clients that are gone end the pool.
        const check = setInterval(() => {
          if (pool.isGone) finish();
        }, 500);
        // Forked by `fedsim run`: if that process dies (even by kill -9), the IPC channel closes.
        process.once("disconnect", finish);
        process.once("SIGTERM", finish);
      });
    });
}

function hostedIndices(spec: z.infer<typeof poolSpecSchema>["clientIndices"]): number[] {
  if (Array.isArray(spec)) return spec;
  return Array.from({ length: spec.count }, (_, k) => spec.start + k * spec.step);
}
