import { afterEach, describe, expect, it } from "vitest";
import type { ClientBehaviour, ClientNode } from "../client/node.js";
import { ErrorCode } from "../common/errors.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import {
  clientDraw,
  clientProfile,
  computeDelayMs,
  type Distribution,
  type Heterogeneity,
  heterogeneityBehaviour,
  heterogeneitySchema,
  NetworkConditions,
  scheduledNetworkScale,
  transferDelayMs,
} from "../scenarios/sim/heterogeneity.js";
import { composeBehaviours } from "../scenarios/sim/pool.js";
import type { CoordinatorHandle } from "../server/coordinator.js";
import { eventually } from "./helpers/eventually.js";
import { expectError } from "./helpers/expect-error.js";
import { smallMnist, startClients, startTestCoordinator } from "./helpers/federation.js";

const heterogeneity = (raw: unknown): Heterogeneity => heterogeneitySchema.parse(raw);
const draws = (d: Distribution, seed: number, purpose = "speed", n = 1000) =>
  Array.from({ length: n }, (_, i) => clientDraw(d, seed, purpose, i));
const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return (sorted[(sorted.length - 1) >> 1] + sorted[sorted.length >> 1]) / 2;
};

describe("per-client draws", () => {
  const h = heterogeneity({
    speed: { kind: "lognormal", median: 1, sigma: 0.5 },
    latencyMs: { kind: "uniform", min: 20, max: 200 },
    bandwidthMbps: {
      kind: "tiers",
      tiers: [
        { fraction: 0.2, value: 1 },
        { fraction: 0.8, value: 50 },
      ],
    },
  });

  it("the same seed gives every client the same profile; another seed gives others", () => {
    const profiles = (seed: number) => Array.from({ length: 50 }, (_, i) => clientProfile(h, seed, i));
    expect(profiles(7)).toEqual(profiles(7));
    const other = profiles(8);
    const same = profiles(7).filter(
      (p, i) => p.speed === other[i].speed && p.latencyMs === other[i].latencyMs,
    );
    expect(same.length).toBe(0);
    // Clients differ from each other, too.
    expect(new Set(profiles(7).map((p) => p.speed)).size).toBe(50);
  });

  it("speed, latency and bandwidth are independent draws", () => {
    const uniform: Distribution = { kind: "uniform", min: 0, max: 1 };
    expect(draws(uniform, 3, "speed", 20)).not.toEqual(draws(uniform, 3, "latency", 20));
  });

  it("tiers: the share of clients in each tier matches its fraction over 1,000 clients", () => {
    const values = draws(
      {
        kind: "tiers",
        tiers: [
          { fraction: 0.2, value: 0.2 },
          { fraction: 0.8, value: 1 },
        ],
      },
      11,
    );
    const slow = values.filter((v) => v === 0.2).length / values.length;
    expect(values.every((v) => v === 0.2 || v === 1)).toBe(true);
    expect(Math.abs(slow - 0.2)).toBeLessThan(0.04);
  });

  it("lognormal: the sample median is the median and log-values spread by sigma", () => {
    const values = draws({ kind: "lognormal", median: 2, sigma: 0.5 }, 5);
    expect(values.every((v) => v > 0)).toBe(true);
    expect(median(values)).toBeGreaterThan(1.85);
    expect(median(values)).toBeLessThan(2.15);
    const logs = values.map(Math.log);
    const mean = logs.reduce((a, b) => a + b, 0) / logs.length;
    const sd = Math.sqrt(logs.reduce((a, b) => a + (b - mean) ** 2, 0) / logs.length);
    expect(Math.abs(sd - 0.5)).toBeLessThan(0.05);
  });

  it("uniform stays in [min, max] and fills it; fixed and a bare number give one value", () => {
    const values = draws({ kind: "uniform", min: 20, max: 200 }, 2, "latency");
    expect(Math.min(...values)).toBeGreaterThanOrEqual(20);
    expect(Math.max(...values)).toBeLessThan(200);
    expect(Math.abs(values.reduce((a, b) => a + b, 0) / values.length - 110)).toBeLessThan(6);
    const bare = heterogeneity({ speed: 0.5, latencyMs: { kind: "fixed", value: 30 } });
    expect(bare.speed).toEqual({ kind: "fixed", value: 0.5 });
    expect(clientProfile(bare, 1, 9)).toMatchObject({ speed: 0.5, latencyMs: 30 });
  });

  it("bandwidthMbps sets both directions; uploadMbps/downloadMbps override one", () => {
    const p = clientProfile(heterogeneity({ bandwidthMbps: 10, uploadMbps: 2 }), 0, 0);
    expect(p).toEqual({ speed: 1, latencyMs: 0, uploadMbps: 2, downloadMbps: 10 });
    expect(clientProfile(undefined, 0, 0)).toEqual({
      speed: 1,
      latencyMs: 0,
      uploadMbps: Number.POSITIVE_INFINITY,
      downloadMbps: Number.POSITIVE_INFINITY,
    });
  });
});

describe("delays", () => {
  it("a client of speed s takes t/s in all: it waits t(1/s − 1) after training, never less than 0", () => {
    expect(computeDelayMs(0.25, 2)).toBeCloseTo(6000, 6);
    expect(computeDelayMs(0.5, 1)).toBeCloseTo(1000, 6);
    expect(computeDelayMs(1, 3)).toBe(0);
    // Faster than this machine is not possible: no negative wait.
    expect(computeDelayMs(4, 3)).toBe(0);
    expectError(() => computeDelayMs(0, 1), ErrorCode.INVALID_CONFIG, "speed");
  });

  it("a transfer takes latency plus bytes·8 / bandwidth, proportional to the bytes", () => {
    // 1 MB at 8 Mbit/s is one second.
    expect(transferDelayMs(0, 8, 1_000_000)).toBeCloseTo(1000, 9);
    const latency = 40;
    const one = transferDelayMs(latency, 5, 300_000) - latency;
    const three = transferDelayMs(latency, 5, 900_000) - latency;
    expect(three).toBeCloseTo(3 * one, 9);
    expect(transferDelayMs(latency, Number.POSITIVE_INFINITY, 1e9)).toBe(latency);
    expectError(() => transferDelayMs(-1, 1, 1), ErrorCode.INVALID_CONFIG, "latencyMs");
    expectError(() => transferDelayMs(1, 0, 1), ErrorCode.INVALID_CONFIG, "mbps");
  });

  it("the network scale multiplies latency and transfer time, and may change at run time", () => {
    const network = new NetworkConditions();
    const b = heterogeneityBehaviour({ speed: 1, latencyMs: 10, uploadMbps: 8, downloadMbps: 80 }, network);
    expect(b.afterTrainDelayMs).toBeUndefined();
    expect(b.downloadDelayMs?.(1, 1_000_000)).toBeCloseTo(110, 9);
    expect(b.delayMs?.(1, 1_000_000)).toBeCloseTo(1010, 9);
    network.setScale(2);
    expect(b.downloadDelayMs?.(2, 1_000_000)).toBeCloseTo(220, 9);
    expectError(() => network.setScale(0), ErrorCode.INVALID_CONFIG, "networkScale");
    expectError(() => network.setScale(Number.NaN), ErrorCode.INVALID_CONFIG, "networkScale");
    expect(network.scale).toBe(2);
  });

  it("a client like this machine gets no hooks at all", () => {
    const b = heterogeneityBehaviour(clientProfile(undefined, 0, 0), new NetworkConditions());
    expect(b).toEqual({});
  });

  it("the scheduled network scale is the last entry starting at or before the round", () => {
    const h = heterogeneity({
      networkScale: [
        { fromRound: 8, scale: 2 },
        { fromRound: 3, scale: 1.5 },
      ],
    });
    expect([1, 2, 3, 7, 8, 20].map((r) => scheduledNetworkScale(h, r))).toEqual([1, 1, 1.5, 1.5, 2, 2]);
    expect(scheduledNetworkScale(undefined, 5)).toBe(1);
  });

  it("composeBehaviours adds up download and after-training delays", () => {
    const a: ClientBehaviour = { downloadDelayMs: (_r, b) => b, afterTrainDelayMs: (_r, s) => s * 1000 };
    const b: ClientBehaviour = { downloadDelayMs: () => 5, afterTrainDelayMs: () => 1 };
    const both = composeBehaviours([a, b, {}]);
    expect(both.downloadDelayMs?.(1, 100)).toBe(105);
    expect(both.afterTrainDelayMs?.(1, 2)).toBe(2001);
  });
});

describe("heterogeneous clients in a real fit", () => {
  let coordinator: CoordinatorHandle | undefined;
  let clients: ClientNode[] = [];
  afterEach(async () => {
    for (const c of clients) c.close();
    await coordinator?.close();
    clients = [];
  });

  it("a slow client waits for its speed after training; transfers wait for their bytes", async () => {
    const { parts, test } = await smallMnist(2, 40, 50);
    coordinator = await startTestCoordinator(test, {
      rounds: 1,
      minAvailableClients: 2,
      strategy: new FedAvg({ fitConfig: { epochs: 1, batchSize: 20, learningRate: 0.1 }, minFitClients: 2 }),
    });
    const profiles = [
      { speed: 0.25, latencyMs: 30, uploadMbps: 2, downloadMbps: 20 },
      { speed: 1, latencyMs: 30, uploadMbps: 2, downloadMbps: 20 },
    ];
    type Call = { hook: string; input: number; ms: number };
    const hookCalls: Call[][] = [[], []];
    const slept: number[][] = [[], []];
    /** The client's behaviour, with every hook call recorded next to what it asked for. */
    const recorded = (i: number): ClientBehaviour => {
      const inner = heterogeneityBehaviour(profiles[i], new NetworkConditions());
      const wrap = (hook: "downloadDelayMs" | "afterTrainDelayMs" | "delayMs") => {
        const f = inner[hook];
        if (!f) return {};
        return {
          [hook]: (round: number, input: number) => {
            const ms = f(round, input);
            hookCalls[i].push({ hook, input, ms });
            return ms;
          },
        };
      };
      return { ...wrap("downloadDelayMs"), ...wrap("afterTrainDelayMs"), ...wrap("delayMs") };
    };
    clients = startClients(coordinator.url, parts, (i) => ({
      behaviour: recorded(i),
      // Record instead of sleeping: the test checks what was asked for, not the clock.
      sleep: async (ms) => {
        slept[i].push(ms);
      },
    }));
    await Promise.all(clients.map((c) => c.ready));
    const result = await coordinator.run();
    expect(result.rounds[0].participants).toBe(2);
    await eventually(() => expect(clients.map((c) => c.roundsTrained)).toEqual([1, 1]));

    const bytes = coordinator.model.countParams() * 4;
    const [slow, fast] = hookCalls;
    expect(slow.map((c) => c.hook)).toEqual(["downloadDelayMs", "afterTrainDelayMs", "delayMs"]);
    expect(fast.map((c) => c.hook)).toEqual(["downloadDelayMs", "delayMs"]);
    // Download: the real weights the node received; upload: the real delta it sent.
    for (const calls of hookCalls) {
      expect(calls[0].input).toBe(bytes);
      expect(calls[0].ms).toBeCloseTo(30 + (bytes * 8) / 20_000, 9);
      expect(calls.at(-1)?.input).toBe(bytes);
      expect(calls.at(-1)?.ms).toBeCloseTo(30 + (bytes * 8) / 2_000, 9);
    }
    // The slow client waits three times its measured training time (speed 0.25 = 4× slower).
    const train = slow[1];
    expect(train.input).toBeGreaterThan(0);
    expect(train.ms).toBeCloseTo(train.input * 3 * 1000, 6);
    // What the node slept is exactly what the hooks asked for, in order.
    expect(slept[0]).toEqual(slow.map((c) => c.ms));
    expect(slept[1]).toEqual(fast.map((c) => c.ms));
    expect(slept[0].reduce((a, b) => a + b, 0)).toBeGreaterThan(slept[1].reduce((a, b) => a + b, 0));
  });
});
