import { createAdapter } from "@socket.io/redis-adapter";
import { Redis } from "ioredis";
import type { Server } from "socket.io";
import { ErrorCode, FedsimError } from "../../common/errors.js";

/** How long a request through the adapter (a roster, a round plan) waits for every server's answer. */
export const ADAPTER_REQUEST_TIMEOUT_MS = 10_000;

/**
 * How long a process waits at start for Redis before giving up. Long enough for Redis started
 * alongside (by systemd, a container orchestrator) to come up; short enough that a wrong URL is
 * an error on the terminal rather than a process that seems to hang.
 */
export const DEFAULT_REDIS_WAIT_MS = 30_000;

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
  url: string,
  log: (line: string) => void,
  /** After an outage, once both clients are back (rosters may have been missed meanwhile). */
  onReconnect: () => void = () => {},
  /** How long to wait for Redis at start before failing with REDIS_UNREACHABLE. */
  waitMs: number = DEFAULT_REDIS_WAIT_MS,
): Promise<RedisAttachment> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `--redis: "${url}" is not a URL (redis://host:port)`);
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `--redis: "${url}" must start with redis:// or rediss://`,
    );
  }
  const retryStrategy = (times: number) => Math.min(100 * times, 2000);
  // Commands wait out an outage (and are sent when Redis is back) instead of failing: the adapter
  // does not catch a failed publish, and a rejected promise nobody handles would end the process.
  // Requests that come back too late are the callers' concern (they time out, and a stale round
  // plan finds its weights gone); a replayed roster notice is harmless.
  const settings = { retryStrategy, lazyConnect: true, maxRetriesPerRequest: null };
  const pub = new Redis(url, settings);
  const sub = new Redis(url, settings);
  let down = false;
  let closing = false;
  let joined = false;
  let firstProblem: string | null = null;
  const lost = (why: string) => {
    if (closing) return;
    if (!joined) {
      // Before the first connection there is nothing to lose: say once what is wrong and for how long we wait.
      if (firstProblem === null) {
        log(`redis: cannot reach ${parsed.host} (${why}); retrying for up to ${Math.round(waitMs / 1000)} s`);
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
      `redis: no connection to ${parsed.host} within ${Math.round(waitMs / 1000)} s (${firstProblem ?? "no answer"}); is redis-server running there? (--redis-wait sets the wait)`,
    );
  }
  joined = true;
  io.adapter(createAdapter(pub, sub, { requestsTimeout: ADAPTER_REQUEST_TIMEOUT_MS }));
  log(`redis: joined the adapter at ${parsed.host}`);
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
function connectWhenUp(client: Redis): Promise<void> {
  return new Promise((resolve) => {
    client.once("ready", () => resolve());
    client.connect().catch(() => {
      // The retry strategy keeps trying; "ready" resolves this.
    });
  });
}
