import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { FedBuff } from "../common/strategy/fedbuff.js";
import { RemoteClientProxy } from "../server/edges/edge-directory.js";
import { ensureBuilt } from "./helpers/built-cli.js";
import { type CliProcess, killAllCli } from "./helpers/cli-process.js";
import { spawnEdgeProcesses } from "./helpers/edge-processes.js";
import { type Federation, startFederation } from "./helpers/edges.js";
import { eventually } from "./helpers/eventually.js";
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

describe("asynchronous strategies over edges: faults", () => {
  it("an edge killed while its client trains: that fit is EDGE_LOST, the clients move to the other edge, every version is published", async () => {
    // Edges as real processes (the compiled CLI), so that one can be killed outright.
    const edges = new Map<string, CliProcess>();
    const ports: number[] = [];
    let balancer: TcpBalancer | null = null;
    let fed: Federation | null = null;
    let killing: Promise<unknown> | null = null;
    const lost: { clientId: string; edgeId: string }[] = [];

    /**
     * The first client to finish training on version 1 or later waits, before it replies, until
     * its edge has been killed: that fit is certainly in flight when the edge dies.
     */
    const killMyEdge = (i: number) => async () => {
      if (killing === null && fed !== null) {
        const clientId = fed.clients[i].clientId;
        const proxy = fed.coordinator.scaleOut?.directory.connected().find((c) => c.id === clientId);
        if (!(proxy instanceof RemoteClientProxy)) throw new Error(`${clientId} is on no edge`);
        const edge = edges.get(proxy.edgeId) as CliProcess;
        lost.push({ clientId, edgeId: proxy.edgeId });
        killing = edge.done;
        edge.child.kill("SIGKILL");
      }
      await killing;
    };

    fed = await startFederation({
      strategy: () => new FedBuff({ concurrency: 4, bufferSize: 2, fitConfig }),
      redis,
      edges: 0,
      rounds: 4,
      beforeClients: async (coordinator) => {
        const spawned = await spawnEdgeProcesses(redis.url, coordinator.url, ["edge-a", "edge-b"]);
        for (const [id, edge] of spawned.edges) edges.set(id, edge);
        ports.push(...spawned.ports);
        balancer = await TcpBalancer.start(ports);
      },
      clientUrl: () => (balancer as unknown as TcpBalancer).url,
      client: (i) => ({
        behaviour: { delayMs: (version) => (version >= 1 && killing === null ? 1 : 0) },
        sleep: killMyEdge(i),
      }),
    });
    const federation = fed;
    try {
      const result = await federation.result;
      expect(lost).toHaveLength(1);
      const [{ clientId, edgeId }] = lost;
      const survivor = edgeId === "edge-a" ? "edge-b" : "edge-a";
      expect(result.stopReason).toBeUndefined();
      expect(result.rounds.map((r) => r.round)).toEqual([1, 2, 3, 4]);
      expect(result.rounds.map((r) => r.participants)).toEqual([2, 2, 2, 2]);
      const failures = result.rounds.flatMap((r) => r.failureDetails);
      expect(failures).toContainEqual({ clientId, reason: "disconnect", code: "EDGE_LOST" });
      for (const f of failures) expect(["EDGE_LOST", "EDGE_UNREACHABLE"]).toContain(f.code);
      expect(result.final.accuracy).toBeGreaterThan(result.initial.accuracy + 0.1);
      // The dead edge's clients came back through the balancer, to the edge that is left.
      await eventually(() => {
        const held = federation.coordinator.scaleOut?.directory.connected() ?? [];
        expect(held.map((c) => (c as RemoteClientProxy).edgeId)).toEqual(Array(4).fill(survivor));
      });
    } finally {
      await federation.close();
      await (balancer as TcpBalancer | null)?.close();
    }
  });
});
