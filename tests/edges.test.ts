import { describe, expect, it } from "vitest";
import { FedAvg } from "../common/strategy/fedavg.js";
import { FedMedian } from "../common/strategy/fedmedian.js";
import type { Strategy } from "../common/strategy/strategy.js";
import { maxAbsDiff, startFederation } from "./helpers/edges.js";
import { parsePrometheus } from "./helpers/observe.js";
import { useRedis } from "./helpers/redis.js";

const fitConfig = { epochs: 1, batchSize: 16, learningRate: 0.1 };

const redis = useRedis();

/** The final global weights and records of one run, with or without edges. */
async function finalModel(strategy: () => Strategy, withEdges: boolean) {
  const logs: string[] = [];
  const fed = await startFederation({ strategy, ...(withEdges ? { redis } : {}), logs });
  try {
    const result = await fed.result;
    return { weights: fed.coordinator.loop.globalWeights.values.slice(), result, logs };
  } finally {
    await fed.close();
  }
}

describe("coordinator edges on the Redis adapter", () => {
  it("FedAvg over two edges' partial sums gives the model one coordinator gives", async () => {
    const strategy = () => new FedAvg({ fractionFit: 1, minFitClients: 4, fitConfig });
    const alone = await finalModel(strategy, false);
    const edged = await finalModel(strategy, true);
    for (const record of edged.result.rounds) {
      expect(record.kept).toBeUndefined();
      expect(record.participants).toBe(4);
      // One partial sum per edge: the coordinator took in far less than the four updates' bytes.
      expect(record.edgeIngressBytes).toBeGreaterThan(0);
      expect(record.edgeIngressBytes as number).toBeLessThan(record.bytesReceived);
    }
    expect(edged.logs.some((l) => l.includes("edges send one partial sum per round"))).toBe(true);
    expect(maxAbsDiff(alone.weights, edged.weights)).toBeLessThan(1e-5);
    expect(edged.result.final.accuracy).toBeCloseTo(alone.result.final.accuracy, 2);
  });

  it("FedMedian makes the edges forward each update, and the model is the same", async () => {
    const strategy = () => new FedMedian({ fractionFit: 1, minFitClients: 4, fitConfig });
    const alone = await finalModel(strategy, false);
    const edged = await finalModel(strategy, true);
    expect(edged.logs.some((l) => l.includes("edges forward each update (fedmedian needs them)"))).toBe(true);
    for (const record of edged.result.rounds) {
      expect(record.kept).toBeUndefined();
      expect(record.participants).toBe(4);
      // Every update crossed the link: at least the clients' upload bytes came in.
      expect(record.edgeIngressBytes as number).toBeGreaterThanOrEqual(record.bytesReceived);
    }
    expect(maxAbsDiff(alone.weights, edged.weights)).toBeLessThan(1e-5);
  });

  it("/metrics counts the clients on every edge, gauges each edge, and sums the bytes its links brought in", async () => {
    const fed = await startFederation({
      strategy: () => new FedAvg({ fractionFit: 1, minFitClients: 4, fitConfig }),
      redis,
    });
    try {
      const result = await fed.result;
      const m = parsePrometheus(await (await fetch(fed.coordinator.metricsUrl)).text());
      // startFederation puts client i on edge i mod 2, and none on the coordinator itself.
      expect(m.get("fedsim_connected_clients")).toBe(4);
      expect(m.get("fedsim_edges_linked")).toBe(2);
      expect(m.get('fedsim_edge_clients{edge="edge-0"}')).toBe(2);
      expect(m.get('fedsim_edge_clients{edge="edge-1"}')).toBe(2);
      const ingress = result.rounds.reduce((sum, r) => sum + (r.edgeIngressBytes ?? 0), 0);
      expect(ingress).toBeGreaterThan(0);
      expect(m.get("fedsim_edge_ingress_bytes_total")).toBe(ingress);
    } finally {
      await fed.close();
    }
  });
});
