import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { io, type Socket } from "socket.io-client";
import { describeError, ErrorCode, FedsimError } from "../common/errors.js";
import { lenientParser } from "../common/net/lenient-parser.js";
import { decodeIndices } from "../common/pool-protocol.js";
import { type Ack, formatZodIssues, safeParseUntrusted } from "../common/protocol.js";
import { importModule } from "./load.js";
import { PoolFleet } from "./pool-fleet.js";
import {
  type ModuleFingerprint,
  POOLS_NAMESPACE,
  type PoolHostToHubEvents,
  type PoolHubToHostEvents,
  poolAssignSchema,
  poolHostWelcomeSchema,
} from "./pool-hub-protocol.js";
import { compiledCli, forkPoolWorker } from "./pool-process.js";
import { validateScenario } from "./schema.js";

export interface PoolHostOptions {
  /** The coordinator's address, as `fedsim run` printed it. */
  server: string;
  runId: string;
  token: string;
  /** Cores offered: one worker process each (default: every core of this host). */
  cores?: number;
  /** Where the workers connect: an edge of the coordinator (default: `server` itself). */
  connect?: string;
  /** A name for the coordinator's logs (default: the host name). */
  name?: string;
  /**
   * Modules this host may import for the run's custom client or dataset (`--register`): the run
   * names the files it defined them with by content, and each must match one of these.
   */
  register?: string[];
  /** How long to wait for the coordinator to answer the join (default 60 s). */
  joinTimeoutMs?: number;
  log?: (line: string) => void;
}

/** How a pool host's life ended. */
export interface PoolHostResult {
  poolId: string;
  reason: string;
}

type HubSocket = Socket<PoolHubToHostEvents, PoolHostToHubEvents>;

/**
 * `fedsim pool`: offers this host's cores to a running simulation. Joins the run on the
 * coordinator's `/pools` namespace, starts one worker process per core (each one pool session,
 * hosting no client yet), says it is ready, and then hosts whatever share of the virtual clients
 * the run assigns: client index i goes to worker i mod cores, so a client never moves between
 * this host's own workers. Resolves when the run ends; rejects with a typed error when the run
 * refuses the pool, the coordinator goes away, or a worker dies (the host then leaves the run,
 * which gives its clients to the other pools).
 */
export async function runPoolHost(options: PoolHostOptions): Promise<PoolHostResult> {
  const log = options.log ?? (() => {});
  const cores = options.cores ?? os.availableParallelism();
  const cli = compiledCli();
  if (!cli)
    throw new FedsimError(ErrorCode.INVALID_CONFIG, "pool workers need the compiled CLI (npm run build)");
  const socket: HubSocket = io(new URL(POOLS_NAMESPACE, options.server).toString(), {
    transports: ["websocket"],
    reconnection: false,
    parser: lenientParser,
  });
  const children: ChildProcess[] = [];
  try {
    await connected(socket, options.server);
    const reply = await socket
      .timeout(options.joinTimeoutMs ?? 60_000)
      .emitWithAck("join", {
        run: options.runId,
        token: options.token,
        cores,
        name: options.name ?? os.hostname(),
      })
      .catch(
        (): Ack => ({
          ok: false,
          code: ErrorCode.CLIENT_TIMEOUT,
          message: "the coordinator did not answer the join",
        }),
      );
    if (!reply.ok) throw new FedsimError(reply.code, `pool refused: ${reply.message}`);
    const welcome = safeParseUntrusted(poolHostWelcomeSchema, reply);
    if (!welcome.success) {
      throw new FedsimError(ErrorCode.BAD_PAYLOAD, "malformed welcome", formatZodIssues(welcome.error));
    }
    const { poolId, backend, address } = welcome.data;
    const modules = await registerRunModules(options.register ?? [], welcome.data.modules);
    const scenario = validateScenario(welcome.data.scenario, "the run's scenario");
    log(`pool: joined run ${options.runId} as ${poolId} from ${address} with ${cores} cores`);
    for (let k = 0; k < cores; k++) {
      const spec = {
        url: options.connect ?? options.server,
        token: options.token,
        scenario,
        clientIndices: [],
        backend,
        session: true,
        modules,
        poolHost: poolId,
      };
      children.push(forkPoolWorker(cli, spec, cores, log, cores));
    }
    const fleet = PoolFleet.forked(children);
    const ended = lifetime(socket, children);
    await Promise.race([fleet.whenReady(), ended]);
    socket.on("assign", (raw, ack) => {
      const answer = typeof ack === "function" ? ack : () => {};
      hostShare(fleet, cores, raw)
        .then((hosted) => {
          log(`pool: round ${raw?.round}: hosting ${hosted} clients`);
          answer({ ok: true, hosted });
        })
        .catch((err) => {
          log(`pool: could not host the share: ${describeError(err)}`);
          answer({
            ok: false,
            code: err instanceof FedsimError ? err.code : ErrorCode.INTERNAL,
            message: describeError(err),
          });
        });
    });
    const ready = await socket.timeout(60_000).emitWithAck("ready");
    if (!ready.ok) throw new FedsimError(ready.code, `pool refused: ${ready.message}`);
    const reason = await ended;
    log(`pool: ${reason}`);
    return { poolId, reason };
  } finally {
    socket.close();
    for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
  }
}

/** A module as the run and its pools compare it: its file name and the SHA-256 of its content. */
export function moduleFingerprint(file: string): ModuleFingerprint {
  let content: Buffer;
  try {
    content = readFileSync(file);
  } catch (err) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `${file}: cannot read the module: ${describeError(err)}`);
  }
  return { file: path.basename(file), sha256: createHash("sha256").update(content).digest("hex") };
}

/**
 * Imports this host's `--register` modules once every module the run needs has a match among
 * them by content (the same definitions, wherever the files are), or refuses before any worker
 * starts. Returns their absolute paths for the workers to import.
 */
async function registerRunModules(register: readonly string[], needed: readonly ModuleFingerprint[]) {
  const mine = register.map((file) => ({ ...moduleFingerprint(file), path: path.resolve(file) }));
  for (const module of needed) {
    if (mine.some((m) => m.sha256 === module.sha256)) continue;
    const given = mine.map((m) => m.path).join(", ") || "none";
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `the run defines its client or dataset in ${module.file} (sha256 ${module.sha256.slice(0, 12)}…); pass the same file with --register (given: ${given})`,
    );
  }
  for (const m of mine) await importModule(m.path);
  return mine.map((m) => m.path);
}

/** Splits the share over the workers (index mod cores) and waits until each hosts its part. */
async function hostShare(fleet: PoolFleet, cores: number, raw: unknown): Promise<number> {
  const parsed = safeParseUntrusted(poolAssignSchema, raw);
  if (!parsed.success) {
    throw new FedsimError(
      ErrorCode.BAD_PAYLOAD,
      `malformed assign: ${formatZodIssues(parsed.error).join("; ")}`,
    );
  }
  const indices = decodeIndices(parsed.data.indices);
  const parts: number[][] = Array.from({ length: cores }, () => []);
  for (const index of indices) parts[index % cores].push(index);
  await Promise.all(parts.map((part, k) => fleet.host(k, part)));
  return indices.length;
}

function connected(socket: HubSocket, server: string): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve());
    socket.once("connect_error", (err) =>
      reject(new FedsimError(ErrorCode.COORDINATOR_UNREACHABLE, `cannot reach ${server}: ${err.message}`)),
    );
  });
}

/** Resolves with the reason when the run ends; rejects when the pool must leave it. */
function lifetime(socket: HubSocket, children: readonly ChildProcess[]): Promise<string> {
  return new Promise((resolve, reject) => {
    let over: string | null = null;
    socket.on("shutdown", (info) => {
      over = `the run ended: ${String(info?.reason ?? "")}`;
      resolve(over);
    });
    socket.on("disconnect", (reason) => {
      if (over) return resolve(over);
      reject(new FedsimError(ErrorCode.COORDINATOR_UNREACHABLE, `lost the coordinator (${reason})`));
    });
    for (const child of children) {
      child.once("exit", (code, signal) => {
        if (over) return;
        reject(
          new FedsimError(
            ErrorCode.INTERNAL,
            `pool worker ${child.pid} exited (${describeError(code ?? signal)})`,
          ),
        );
      });
    }
  });
}
