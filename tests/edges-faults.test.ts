import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FedAvg } from "../common/strategy/fedavg.js";
import type { RoundRecord } from "../server/round-record.js";
import { ensureBuilt } from "./helpers/built-cli.js";
import { type CliProcess, killAllCli } from "./helpers/cli-process.js";
import { spawnEdgeProcesses } from "./helpers/edge-processes.js";
import { startFederation } from "./helpers/edges.js";
import { TestRedis } from "./helpers/redis.js";
import { TcpBalancer } from "./helpers/tcp-balancer.js";

const fitConfig = { epochs: 1, batchSize: 16, learningRate: 0.1 };

let redis: TestRedis;
beforeAll(async () => {
  redis = await TestRedis.start();
  await ensureBuilt();
}, 600_000);
afterAll(async () => {
  await redis?.stop();
});
afterEach(() => killAllCli());

describe("edges: faults", () => {
  it("an edge killed mid-round: the round completes or keeps the model with a typed reason, its clients move to the other edge, the next round runs", async () => {
    const logs: string[] = [];
    // Edges as real processes (the compiled CLI), so that one can be killed outright.
    const edges: CliProcess[] = [];
    const ports: number[] = [];
    let balancer: TcpBalancer | null = null;
    let killed = false;
    const fed = await startFederation({
      strategy: () => new FedAvg({ fractionFit: 1, minFitClients: 1, fitConfig }),
      redis,
      edges: 0,
      rounds: 2,
      logs,
      beforeClients: async (coordinator) => {
        const spawned = await spawnEdgeProcesses(redis.url, coordinator.url, ["edge-a", "edge-b"]);
        edges.push(...spawned.edges.values());
        ports.push(...spawned.ports);
        balancer = await TcpBalancer.start(ports);
      },
      clientUrl: () => (balancer as unknown as TcpBalancer).url,
      onPhase: (round, phase) => {
        if (round === 1 && phase === "COLLECTING" && !killed) {
          killed = true;
          edges[0].child.kill("SIGKILL");
        }
      },
    });
    try {
      const result = await fed.result;
      const [first, second] = result.rounds as RoundRecord[];
      expect(killed).toBe(true);
      // Round 1: edge-a's clients are typed failures, or (had their outcomes already arrived) the
      // round keeps the model because edge-a's partial sum was lost.
      const codes = first.failureDetails.map((f) => f.code);
      expect(codes.length > 0 || first.kept !== undefined).toBe(true);
      for (const code of codes) expect(["EDGE_LOST", "EDGE_UNREACHABLE"]).toContain(code);
      if (first.kept !== undefined) expect(first.kept).toMatch(/EDGE_LOST|minFitClients/);
      expect(first.participants + first.failures).toBe(4);
      // Round 2 waited for all four clients, now all on edge-b, and aggregated them.
      expect(second.kept).toBeUndefined();
      expect(second.participants).toBe(4);
      expect(second.failures).toBe(0);
    } finally {
      await fed.close();
      await (balancer as TcpBalancer | null)?.close();
    }
  });

  it("Redis restarted between rounds: the federation recovers and the next round runs", async () => {
    const logs: string[] = [];
    const fed = await startFederation({
      strategy: () => new FedAvg({ fractionFit: 1, minFitClients: 4, fitConfig }),
      redis,
      rounds: 3,
      logs,
      onRound: async (record) => {
        if (record.round !== 1) return;
        await redis.stop();
        await redis.start();
      },
    });
    try {
      const result = await fed.result;
      expect(result.rounds).toHaveLength(3);
      for (const record of result.rounds) {
        expect(record.kept).toBeUndefined();
        expect(record.participants).toBe(4);
      }
      expect(logs.some((l) => l.startsWith("redis: connection lost"))).toBe(true);
      expect(logs).toContain("redis: reconnected");
    } finally {
      await fed.close();
    }
  });
});
