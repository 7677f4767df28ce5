import { readFile } from "node:fs/promises";
import type { AuthMode } from "../../common/crypto/auth.js";
import { describeError, ErrorCode, FedsimError } from "../../common/errors.js";
import { startEdge } from "../../server/edges/edge-node.js";

/** What `fedsim coordinator --edge` reads from its options (checked by the coordinator command's schema). */
export interface EdgeCommandOptions {
  host: string;
  port: number;
  redis?: string;
  coordinatorUrl?: string;
  edgeId?: string;
  edgeToken?: string;
  redisWait?: number;
  tlsCert?: string;
  tlsKey?: string;
  ca?: string;
  redisCa?: string;
  maxRememberedClients?: number;
  maxExamplesPerClient?: number;
  maxUpdateNorm?: number;
}

/**
 * `fedsim coordinator --edge`: holds client connections for the coordinator until Ctrl-C or
 * SIGTERM (docs/SCALE-OUT.md). Rounds, model and strategy are the coordinator's; an edge reads
 * only how to listen, how to admit clients and where Redis and the coordinator are.
 */
export async function runEdgeCommand(o: EdgeCommandOptions, auth: AuthMode, log: (line: string) => void) {
  if (o.redis === undefined || o.coordinatorUrl === undefined) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, "--edge needs --redis URL and --coordinator-url URL");
  }
  const limits = {
    ...(o.maxExamplesPerClient !== undefined ? { maxExamplesPerClient: o.maxExamplesPerClient } : {}),
    ...(o.maxUpdateNorm !== undefined ? { maxUpdateNorm: o.maxUpdateNorm } : {}),
  };
  const edge = await startEdge({
    host: o.host,
    port: o.port,
    redisUrl: o.redis,
    coordinatorUrl: o.coordinatorUrl,
    ...(o.edgeId !== undefined ? { edgeId: o.edgeId } : {}),
    ...(o.edgeToken !== undefined ? { edgeToken: o.edgeToken } : {}),
    ...(o.redisWait !== undefined ? { redisWaitMs: o.redisWait * 1000 } : {}),
    ...(o.tlsCert !== undefined && o.tlsKey !== undefined
      ? { tls: { certPath: o.tlsCert, keyPath: o.tlsKey } }
      : {}),
    ...(o.ca !== undefined ? { ca: await readPemFile("--ca", o.ca) } : {}),
    ...(o.redisCa !== undefined ? { redisCa: await readPemFile("--redis-ca", o.redisCa) } : {}),
    auth,
    limits,
    ...(o.maxRememberedClients !== undefined ? { maxRememberedClients: o.maxRememberedClients } : {}),
    log,
  });
  log(`edge ${edge.edgeId}: clients connect to ${edge.url} (websocket transport)`);
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log(`edge ${edge.edgeId}: stopping (${signal})`);
      void edge.close().finally(resolve);
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
}

/** A PEM file named by an option, or INVALID_CONFIG naming the option and the file. */
export async function readPemFile(option: string, file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (err) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `${option}: cannot read ${file}: ${describeError(err)}`);
  }
}
