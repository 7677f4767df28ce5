import { Cluster, Redis } from "ioredis";
import { ErrorCode, FedsimError } from "../../common/errors.js";

/**
 * Where `--redis` points: one Redis, or the seed nodes of a Redis Cluster given as a
 * comma-separated list. One URL to a cluster's node works too (classic pub/sub is broadcast to
 * every node of a cluster), but only a list lets the clients move to another node when theirs fails.
 */
export interface RedisTarget {
  nodes: URL[];
  cluster: boolean;
  /** host:port[,host:port…], for logs and errors (never the password). */
  display: string;
}

export function parseRedisTarget(text: string): RedisTarget {
  const parts = text
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
  if (parts.length === 0) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, "--redis: empty (redis://host:port)");
  }
  const nodes = parts.map((part) => {
    let url: URL;
    try {
      url = new URL(part);
    } catch {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `--redis: "${part}" is not a URL (redis://host:port)`);
    }
    if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `--redis: "${part}" must start with redis:// or rediss://`,
      );
    }
    return url;
  });
  if (nodes.length > 1 && new Set(nodes.map((n) => n.protocol)).size > 1) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      "--redis: a cluster's nodes must all be redis:// or all rediss://",
    );
  }
  return { nodes, cluster: nodes.length > 1, display: nodes.map((n) => n.host).join(",") };
}

export type RedisClient = Redis | Cluster;

const retryStrategy = (times: number) => Math.min(100 * times, 2000);

/**
 * A client that waits out outages instead of failing commands: the adapter does not catch a
 * failed publish, and a rejected promise nobody handles would end the process. Requests that come
 * back too late are the callers' concern (they time out, and a stale round plan finds its weights
 * gone); a replayed roster notice is harmless.
 */
export function createRedisClient(target: RedisTarget, ca?: string): RedisClient {
  const first = target.nodes[0];
  // rediss:// alone trusts the system's CAs; a private CA must be named.
  const tls = first.protocol === "rediss:" ? { tls: ca !== undefined ? { ca } : {} } : {};
  const settings = { retryStrategy, lazyConnect: true, maxRetriesPerRequest: null, ...tls };
  if (!target.cluster) return new Redis(first.href, settings);
  return new Cluster(
    target.nodes.map((n) => ({ host: n.hostname, port: Number(n.port || 6379) })),
    {
      lazyConnect: true,
      clusterRetryStrategy: retryStrategy,
      redisOptions: {
        maxRetriesPerRequest: null,
        ...(first.username ? { username: decodeURIComponent(first.username) } : {}),
        ...(first.password ? { password: decodeURIComponent(first.password) } : {}),
        ...tls,
      },
    },
  );
}
