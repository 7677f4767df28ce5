import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeSelfSignedCert } from "../common/crypto/tls.js";
import type { Dataset } from "../common/data/dataset.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import { startFederation } from "./helpers/edges.js";
import { smallMnist, startTestCoordinator } from "./helpers/federation.js";
import { TestRedis } from "./helpers/redis.js";

/** Redis over TLS only (`--port 0 --tls-port`), its certificate self-signed: a private CA. */
let redis: TestRedis;
let dir: string;
let ca: string;
let url: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "fedsim-redis-tls-"));
  const cert = await makeSelfSignedCert(dir);
  ca = await readFile(cert.certPath, "utf8");
  redis = await TestRedis.notYetStarted();
  await redis.start([
    "--port",
    "0",
    "--tls-port",
    String(redis.port),
    "--tls-cert-file",
    cert.certPath,
    "--tls-key-file",
    cert.keyPath,
    "--tls-ca-cert-file",
    cert.certPath,
    "--tls-auth-clients",
    "no",
  ]);
  url = `rediss://127.0.0.1:${redis.port}`;
}, 120_000);
afterAll(async () => {
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("Redis over TLS (rediss://, --redis-ca)", () => {
  it("a coordinator and two edges that trust the Redis's CA run a federation through it", async () => {
    const fed = await startFederation({
      strategy: () =>
        new FedAvg({
          fractionFit: 1,
          minFitClients: 4,
          fitConfig: { epochs: 1, batchSize: 16, learningRate: 0.1 },
        }),
      redis: { url },
      redisCa: ca,
      rounds: 1,
    });
    try {
      const result = await fed.result;
      expect(result.rounds[0].participants).toBe(4);
      expect(result.rounds[0].kept).toBeUndefined();
    } finally {
      await fed.close();
    }
  });

  it("without the CA the certificate does not verify, and the coordinator says so with REDIS_UNREACHABLE", async () => {
    const { test } = await smallMnist(1, 10, 50);
    const err = await startTestCoordinator(test as Dataset, {
      scaleOut: { redisUrl: url, redisWaitMs: 1_000 },
    }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FedsimError);
    expect((err as FedsimError).code).toBe(ErrorCode.REDIS_UNREACHABLE);
    expect((err as FedsimError).message).toMatch(/self[- ]signed certificate.*--redis-ca FILE/);
  });
});
