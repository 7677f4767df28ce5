import { createAdapter } from "@socket.io/redis-adapter";
import type { Server } from "socket.io";
import { ErrorCode, FedsimError } from "../../common/errors.js";
import { createRedisClient, parseRedisTarget, type RedisClient } from "./redis-target.js";

/** How long a request through the adapter (a roster, a round plan) waits for every server's answer. */
export const ADAPTER_REQUEST_TIMEOUT_MS = 10_000;

/**
 * How long a process waits at start for Redis before giving up. Long enough for Redis started
 * alongside (by systemd, a container orchestrator) to come up; short enough that a wrong URL is
 * an error on the terminal rather than a process that seems to hang.
 */
export const DEFAULT_REDIS_WAIT_MS = 30_000;

/** How to reach Redis: `--redis`, `--redis-wait` and `--redis-ca`. */
export interface RedisConnection {
  /** redis:// or rediss:// URL, or a cluster's nodes, comma-separated. */
  url: string;
  /** How long to wait for Redis at start before failing with REDIS_UNREACHABLE (default 30 s). */
  waitMs?: number;
  /** PEM of the CA that signed a rediss:// server's certificate (default: the system's CAs). */
  ca?: string;
}

export interface RedisAttachment {
  close(): Promise<void>;
}

/**
 * Joins a Socket.IO server to the others on the same Redis through `@socket.io/redis-adapter`
 * (ioredis clients: they reconnect on their own and re-subscribe after a Redis restart). Resolves
 * once both clients are connected, so the first request through the adapter cannot be lost;
 * later outages are logged once each way and surface as failed requests, never as a crash.
 */
export async function attachRedisAdapter(
  // Any typed Server: only its adapter is replaced.
  // biome-ignore lint/suspicious/noExplicitAny: the event maps do not matter here
  io: Server<any, any, any, any>,
  connection: RedisConnection,
  log: (line: string) => void,
  /** After an outage, once both clients are back (rosters may have been missed meanwhile). */
  onReconnect: () => void = () => {},
): Promise<RedisAttachment> {
  const waitMs = connection.waitMs ?? DEFAULT_REDIS_WAIT_MS;
  const target = parseRedisTarget(connection.url);
  const pub = createRedisClient(target, connection.ca);
  const sub = createRedisClient(target, connection.ca);
  let down = false;
  let closing = false;
  let joined = false;
  let firstProblem: string | null = null;
  const lost = (why: string) => {
    if (closing) return;
    if (!joined) {
      // Before the first connection there is nothing to lose: say once what is wrong and for how long we wait.
      if (firstProblem === null) {
        log(
          `redis: cannot reach ${target.display} (${why}); retrying for up to ${Math.round(waitMs / 1000)} s`,
        );
      }
      firstProblem ??= why;
      return;
    }
    if (!down) log(`redis: connection lost (${why}); reconnecting`);
    down = true;
  };
  for (const client of [pub, sub]) {
    client.on("error", (err: Error) => lost(err.message));
    // A Redis that restarts before the first reconnect attempt raises no error, only a close.
    client.on("close", () => lost("connection closed"));
    client.on("ready", () => {
      if (down && pub.status === "ready" && sub.status === "ready") {
        down = false;
        log("redis: reconnected");
        onReconnect();
      }
    });
  }
  const connected = await within(Promise.all([connectWhenUp(pub), connectWhenUp(sub)]), waitMs);
  if (!connected) {
    closing = true;
    pub.disconnect();
    sub.disconnect();
    throw new FedsimError(
      ErrorCode.REDIS_UNREACHABLE,
      `redis: no connection to ${target.display} within ${Math.round(waitMs / 1000)} s (${firstProblem ?? "no answer"}); ${
        /certificate/i.test(firstProblem ?? "")
          ? "name the CA that signed Redis's certificate with --redis-ca FILE"
          : "is redis-server running there? (--redis-wait sets the wait)"
      }`,
    );
  }
  joined = true;
  io.adapter(createAdapter(pub, sub, { requestsTimeout: ADAPTER_REQUEST_TIMEOUT_MS }));
  log(`redis: joined the adapter at ${target.display}`);
  return {
    async close() {
      closing = true;
      // quit lets the adapter's last unsubscribes through; a Redis that is down gets a plain disconnect.
      await Promise.all(
        [pub, sub].map((client) =>
          client.status === "ready" ? client.quit().catch(() => client.disconnect()) : client.disconnect(),
        ),
      );
    },
  };
}

/** True when the promise settles within ms, false when the time runs out first. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Connects, and keeps retrying (ioredis' own strategy) until the first "ready". */
function connectWhenUp(client: RedisClient): Promise<void> {
  return new Promise((resolve) => {
    client.once("ready", () => resolve());
    client.connect().catch(() => {
      // The retry strategy keeps trying; "ready" resolves this.
    });
  });
}
