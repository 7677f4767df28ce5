import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeSelfSignedCert } from "../common/crypto/tls.js";
import type { Dataset } from "../common/data/dataset.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import { startEdge } from "../server/edges/edge-node.js";
import { smallMnist, startClients, startTestCoordinator } from "./helpers/federation.js";
import { TestRedis } from "./helpers/redis.js";

let redis: TestRedis;
let dir: string;
let cert: { certPath: string; keyPath: string };
let ca: string;
beforeAll(async () => {
  redis = await TestRedis.start();
  dir = await mkdtemp(join(tmpdir(), "fedsim-edge-tls-"));
  cert = await makeSelfSignedCert(dir);
  ca = await readFile(cert.certPath, "utf8");
}, 120_000);
afterAll(async () => {
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("edges over TLS", () => {
  it("an edge serves its clients over WSS and links to a TLS coordinator it trusts with --ca; the round trains", async () => {
    const { parts, test } = await smallMnist(2, 60, 200);
    const logs: string[] = [];
    const coordinator = await startTestCoordinator(
      test as Dataset,
      {
        tls: cert,
        rounds: 1,
        minAvailableClients: 2,
        strategy: new FedAvg({
          fractionFit: 1,
          minFitClients: 2,
          fitConfig: { epochs: 1, batchSize: 16, learningRate: 0.1 },
        }),
        scaleOut: { redisUrl: redis.url },
      },
      logs,
    );
    const edge = await startEdge({
      host: "127.0.0.1",
      port: 0,
      redisUrl: redis.url,
      coordinatorUrl: coordinator.url,
      edgeId: "edge-tls",
      auth: { kind: "open" },
      tls: cert,
      ca,
      log: (l) => logs.push(l),
    });
    const clients = startClients(edge.url, parts, () => ({ ca }), logs);
    try {
      expect(coordinator.url.startsWith("https://")).toBe(true);
      expect(edge.url.startsWith("https://")).toBe(true);
      await Promise.all(clients.map((c) => c.ready));
      const result = await coordinator.run();
      expect(result.rounds).toHaveLength(1);
      expect(result.rounds[0].participants).toBe(2);
      expect(result.rounds[0].kept).toBeUndefined();
      expect(result.rounds[0].edgeIngressBytes).toBeGreaterThan(0);
    } finally {
      for (const c of clients) c.close();
      await coordinator.close();
      await edge.close();
    }
  });

  it("an edge that does not trust the coordinator's certificate stops at once with TLS_UNTRUSTED", async () => {
    const { test } = await smallMnist(1, 10, 50);
    const coordinator = await startTestCoordinator(test as Dataset, {
      tls: cert,
      scaleOut: { redisUrl: redis.url },
    });
    try {
      const err = await startEdge({
        host: "127.0.0.1",
        port: 0,
        redisUrl: redis.url,
        coordinatorUrl: coordinator.url,
        auth: { kind: "open" },
      }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(FedsimError);
      expect((err as FedsimError).code).toBe(ErrorCode.TLS_UNTRUSTED);
      expect((err as FedsimError).message).toContain("--ca FILE");
    } finally {
      await coordinator.close();
    }
  });
});
