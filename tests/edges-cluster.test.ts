import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FedAvg } from "../common/strategy/fedavg.js";
import { maxAbsDiff, startFederation } from "./helpers/edges.js";
import { type TestRedis, TestRedisCluster } from "./helpers/redis.js";

const fitConfig = { epochs: 1, batchSize: 16, learningRate: 0.1 };
const strategy = () => new FedAvg({ fractionFit: 1, minFitClients: 4, fitConfig });

let cluster: TestRedisCluster;
beforeAll(async () => {
  cluster = await TestRedisCluster.start(3);
}, 120_000);
afterAll(async () => {
  await cluster?.stop();
});

describe("edges on a Redis Cluster (--redis with the nodes, comma-separated)", () => {
  it("two edges joined through a three-node cluster give the model one coordinator gives", async () => {
    const models: Float32Array[] = [];
    for (const redis of [undefined, cluster]) {
      const logs: string[] = [];
      const fed = await startFederation({ strategy, ...(redis ? { redis } : {}), logs });
      try {
        const result = await fed.result;
        expect(result.rounds.every((r) => r.kept === undefined && r.participants === 4)).toBe(true);
        models.push(fed.coordinator.loop.globalWeights.values.slice());
        if (redis)
          expect(
            logs.some((l) => l.startsWith(`redis: joined the adapter at ${cluster.nodes[0].url.slice(8)}`)),
          ).toBe(true);
      } finally {
        await fed.close();
      }
    }
    expect(maxAbsDiff(models[0], models[1])).toBeLessThan(1e-5);
  });

  it("the cluster node holding the most subscriptions stopped between rounds: they move to the others and every round runs", async () => {
    const logs: string[] = [];
    let stopped: TestRedis | null = null;
    const fed = await startFederation({
      strategy,
      redis: cluster,
      rounds: 5,
      logs,
      onRound: async (record) => {
        if (record.round !== 1) return;
        stopped = await cluster.busiestSubscriberNode();
        await stopped.stop();
      },
    });
    try {
      const result = await fed.result;
      expect(result.rounds).toHaveLength(5);
      expect(stopped).not.toBeNull();
      for (const record of result.rounds) {
        expect(record.kept).toBeUndefined();
        expect(record.participants).toBe(4);
      }
    } finally {
      await fed.close();
    }
  });
});
