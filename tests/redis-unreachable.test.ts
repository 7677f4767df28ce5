import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Dataset } from "../common/data/dataset.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { startEdge } from "../server/edges/edge-node.js";
import { ensureBuilt } from "./helpers/built-cli.js";
import { killAllCli, spawnCli } from "./helpers/cli-process.js";
import { eventually } from "./helpers/eventually.js";
import { smallMnist, startClients, startTestCoordinator } from "./helpers/federation.js";
import { TestRedis } from "./helpers/redis.js";

let test: Dataset;
beforeAll(async () => {
  test = (await smallMnist(1, 10, 50)).test as Dataset;
  await ensureBuilt();
}, 600_000);

let later: TestRedis | null = null;
afterEach(async () => {
  killAllCli();
  await later?.stop();
  later = null;
});

async function failure(promise: Promise<unknown>): Promise<FedsimError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FedsimError);
  return err as FedsimError;
}

describe("a Redis that is not there", () => {
  it("the library's coordinator fails with REDIS_UNREACHABLE after its wait and says so once while waiting", async () => {
    const absent = await TestRedis.notYetStarted();
    const logs: string[] = [];
    const err = await failure(
      startTestCoordinator(test, { port: 0, scaleOut: { redisUrl: absent.url, redisWaitMs: 300 } }, logs),
    );
    expect(err.code).toBe(ErrorCode.REDIS_UNREACHABLE);
    expect(err.message).toContain(`127.0.0.1:${absent.port}`);
    expect(logs.filter((l) => l.startsWith("redis: cannot reach"))).toHaveLength(1);
    expect(logs.some((l) => l.startsWith("redis: connection lost"))).toBe(false);
  });

  it("an edge fails the same way and closes the link it had opened to the coordinator", async () => {
    const redis = await TestRedis.start();
    try {
      const coordinator = await startTestCoordinator(test, { scaleOut: { redisUrl: redis.url } });
      try {
        const absent = await TestRedis.notYetStarted();
        const edge = startEdge({
          host: "127.0.0.1",
          port: 0,
          redisUrl: absent.url,
          coordinatorUrl: coordinator.url,
          edgeId: "edge-without-redis",
          auth: { kind: "open" },
          redisWaitMs: 300,
        });
        const err = await failure(edge);
        expect(err.code).toBe(ErrorCode.REDIS_UNREACHABLE);
        await eventually(() => expect(coordinator.scaleOut?.links.has("edge-without-redis")).toBe(false));
      } finally {
        await coordinator.close();
      }
    } finally {
      await redis.stop();
    }
  });

  it("the CLI prints one error line with the code and a hint, and exits 1", async () => {
    const absent = await TestRedis.notYetStarted();
    const cli = spawnCli([
      "coordinator",
      "--redis",
      absent.url,
      "--redis-wait",
      "0.3",
      "--port",
      "0",
      "--insecure-open",
    ]);
    const exit = await cli.done;
    expect(exit.code).toBe(1);
    expect(exit.stderr).toMatch(
      /^error: REDIS_UNREACHABLE: redis: no connection to 127\.0\.0\.1:\d+ within/m,
    );
    expect(exit.stderr).toMatch(/^hint: start redis-server/m);
  });

  it("a Redis that comes up during the wait is joined, and the coordinator stays up", async () => {
    later = await TestRedis.notYetStarted();
    const cli = spawnCli([
      "coordinator",
      "--redis",
      later.url,
      "--redis-wait",
      "600",
      "--port",
      "0",
      "--insecure-open",
    ]);
    await cli.waitFor(/redis: cannot reach 127\.0\.0\.1:\d+ \(.*\); retrying for up to 600 s/);
    await later.start();
    await cli.waitFor(/redis: joined the adapter/);
    expect(cli.child.exitCode).toBeNull();
  });
});

describe("Redis gone at shutdown", () => {
  it("an edge stopped while Redis is down closes without an unhandled rejection, though its clients' departure cannot be announced", async () => {
    const redis = await TestRedis.start();
    const logs: string[] = [];
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    const coordinator = await startTestCoordinator(test, { scaleOut: { redisUrl: redis.url } });
    try {
      const edge = await startEdge({
        host: "127.0.0.1",
        port: 0,
        redisUrl: redis.url,
        coordinatorUrl: coordinator.url,
        edgeId: "edge-closing",
        auth: { kind: "open" },
        log: (l) => logs.push(l),
      });
      const { parts } = await smallMnist(1, 10, 50);
      const clients = startClients(edge.url, parts);
      await Promise.all(clients.map((c) => c.ready));
      await redis.stop();
      await eventually(() => expect(logs.some((l) => l.startsWith("redis: connection lost"))).toBe(true));
      await edge.close();
      for (const c of clients) c.close();
      // Rejections are reported after the microtasks of the turn that made them.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
      await coordinator.close();
    }
  });
});
