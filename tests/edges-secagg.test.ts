import { describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import type { CoordinatorOptions } from "../server/coordinator.js";
import { PrivacyPlugin } from "../server/plugins/privacy.js";
import { maxAbsDiff, startFederation } from "./helpers/edges.js";
import { useRedis } from "./helpers/redis.js";

const fitConfig = { epochs: 1, batchSize: 16, learningRate: 0.1 };
const strategy =
  (minFitClients = 4) =>
  () =>
    new FedAvg({ fractionFit: 1, minFitClients, fitConfig });

const redis = useRedis();

const secaggSettings = {
  graph: "complete",
  clipRange: 4,
  maxWeight: 1000,
  stageTimeoutMs: 30_000,
  seed: 5,
} as const;

/** SecAgg over all four clients (complete graph, threshold 3 of each client's 4 share holders). */
const secagg: CoordinatorOptions["plugin"] = ({ log }) =>
  new PrivacyPlugin({ envelope: false, secagg: secaggSettings, expectedClientsPerRound: 4, log });

/**
 * Distributed DP on top: each client clips its update to a norm far below its own and adds its
 * share of the noise, here none (z = 0), so the run is deterministic and only the clip shows.
 */
const distributedDp: CoordinatorOptions["plugin"] = ({ log }) =>
  new PrivacyPlugin({
    envelope: false,
    secagg: secaggSettings,
    dp: { mode: "distributed", noiseMultiplier: 0, clipNorm: 0.05, delta: 1e-5, conversion: "classic" },
    expectedClientsPerRound: 4,
    log,
  });

/** The final global weights and records of one SecAgg run, on one coordinator or over two edges. */
async function secureRun(options: {
  withEdges: boolean;
  minFitClients?: number;
  plugin?: CoordinatorOptions["plugin"];
  rounds: number;
  onPhase?: (fed: Awaited<ReturnType<typeof startFederation>>, round: number, phase: string) => void;
}) {
  const logs: string[] = [];
  let fed: Awaited<ReturnType<typeof startFederation>> | undefined;
  fed = await startFederation({
    strategy: strategy(options.minFitClients),
    coordinator: { plugin: options.plugin ?? secagg },
    rounds: options.rounds,
    ...(options.withEdges ? { redis } : {}),
    ...(options.onPhase ? { onPhase: (round, phase) => fed && options.onPhase?.(fed, round, phase) } : {}),
    logs,
  });
  try {
    const result = await fed.result;
    return { weights: fed.coordinator.loop.globalWeights.values.slice(), result, logs };
  } finally {
    await fed.close();
  }
}

describe("secure aggregation over edges", () => {
  it("the edges' masked sums unmask to the model one coordinator gets, and no single masked vector crosses a link", async () => {
    const alone = await secureRun({ withEdges: false, rounds: 2 });
    const edged = await secureRun({ withEdges: true, rounds: 2 });
    // Each client's masked input: n trainable values and its weight, 4 bytes each.
    const vectorBytes = (edged.weights.length + 1) * 4;
    for (const record of [...alone.result.rounds, ...edged.result.rounds]) {
      expect(record.kept).toBeUndefined();
      expect(record.participants).toBe(4);
    }
    for (const record of edged.result.rounds) {
      // Two edges, two clients each: two masked sums came in, not four masked vectors.
      expect(record.edgeIngressBytes as number).toBeGreaterThanOrEqual(2 * vectorBytes);
      expect(record.edgeIngressBytes as number).toBeLessThan(3 * vectorBytes);
    }
    for (const edge of ["edge-0", "edge-1"]) {
      expect(edged.logs.filter((l) => l.includes(`one masked sum of 2 inputs from ${edge}`))).toHaveLength(2);
    }
    // The same quantised inputs give the same sum mod 2^32, however it was grouped.
    expect(maxAbsDiff(alone.weights, edged.weights)).toBeLessThan(1e-5);
    expect(edged.result.final.accuracy).toBeCloseTo(alone.result.final.accuracy, 2);
  });

  it("a client that drops after its masked input, before unmasking, is recovered from the others' shares", async () => {
    const alone = await secureRun({ withEdges: false, rounds: 1 });
    let droppedId = "";
    const edged = await secureRun({
      withEdges: true,
      rounds: 1,
      onPhase: (fed, round, phase) => {
        if (round !== 1 || phase !== "UNMASKING" || droppedId !== "") return;
        // Client 0 is on edge-0; its masked input is already in that edge's hands.
        droppedId = fed.clients[0].clientId;
        fed.clients[0].close();
      },
    });
    expect(droppedId).not.toBe("");
    const [record] = edged.result.rounds;
    expect(record.kept).toBeUndefined();
    // Its input is in the sum: the aggregate is the mean over all four, as without the dropout.
    expect(record.participants).toBe(4);
    expect(edged.logs.some((l) => l.includes(`secagg: no unmasking from ${droppedId}`))).toBe(true);
    expect(maxAbsDiff(alone.weights, edged.weights)).toBeLessThan(1e-5);
  });

  it("a client gone before the key stages fails them with a typed reason, and the round sums the other three", async () => {
    const dropFirst = (fed: Awaited<ReturnType<typeof startFederation>>, round: number, phase: string) => {
      if (round === 1 && phase === "CONFIGURE_FIT") fed.clients[0].close();
    };
    // Its disconnect may reach the coordinator (or its edge) after the first stage was sent: the
    // stage then fails on the disconnect, not at its timeout (server/socket-proxy.ts).
    const run = (withEdges: boolean) =>
      secureRun({ withEdges, rounds: 1, minFitClients: 3, onPhase: dropFirst });
    const alone = await run(false);
    const edged = await run(true);
    for (const run of [alone, edged]) {
      const [record] = run.result.rounds;
      expect(record.kept).toBeUndefined();
      expect(record.sampled).toBe(4);
      expect(record.participants).toBe(3);
      expect(record.failureDetails).toEqual([expect.objectContaining({ reason: "disconnect" })]);
    }
    // Over edges the edge says why: its client left (or never answered).
    expect([ErrorCode.CLIENT_DISCONNECTED, ErrorCode.CLIENT_TIMEOUT]).toContain(
      edged.result.rounds[0].failureDetails?.[0].code,
    );
    expect(maxAbsDiff(alone.weights, edged.weights)).toBeLessThan(1e-5);
  });

  it("distributed DP with SecAgg takes the same path: the edges' clients clip as one coordinator's do", async () => {
    const alone = await secureRun({ withEdges: false, rounds: 1, plugin: distributedDp });
    const edged = await secureRun({ withEdges: true, rounds: 1, plugin: distributedDp });
    const unclipped = await secureRun({ withEdges: true, rounds: 1 });
    expect(edged.result.rounds[0].participants).toBe(4);
    expect(edged.result.rounds[0].clipNorm).toBe(0.05);
    expect(maxAbsDiff(alone.weights, edged.weights)).toBeLessThan(1e-5);
    // The clip reached the edges' clients: without it the model moves much further.
    expect(maxAbsDiff(unclipped.weights, edged.weights)).toBeGreaterThan(1e-3);
  });
});
