import { describe, expect, it } from "vitest";
import { runLoad } from "../bench/sections/load-run.js";
import { evaluateSoak, runSoak, type SoakSample } from "../bench/sections/soak-run.js";

/** Short versions of bench/load.ts and bench/soak.ts: the same code, smaller numbers. */
describe("load", () => {
  it("100 clients, all sampled, two rounds: every client trains every round, no failure", async () => {
    const result = await runLoad({ clients: 100, sampled: "all", rounds: 2, processes: 0 });
    expect(result.connected).toBe(100);
    expect(result.rounds).toHaveLength(2);
    for (const round of result.rounds) {
      expect(round).toMatchObject({ sampled: 100, participants: 100, failures: 0 });
      expect(round.phases.COLLECTING).toBeGreaterThan(0);
    }
    expect(result.failures).toMatchObject({ total: 0, inRounds: 0, clientErrors: 0, notConnected: 0 });
    expect(result.coordinator.peakRss).toBeGreaterThanOrEqual(result.coordinator.rssBefore);
    expect(result.coordinator.memorySamples).toBeGreaterThan(0);
  });

  it("samples the asked number of the connected clients", async () => {
    const result = await runLoad({ clients: 30, sampled: 5, rounds: 1, processes: 0 });
    expect(result.rounds[0]).toMatchObject({ sampled: 5, participants: 5, failures: 0 });
    expect(result.failures.total).toBe(0);
  });
});

describe("soak", () => {
  it("20 rounds: tensors exactly flat, listeners and timers not growing, RSS bounded", async () => {
    const result = await runSoak({ rounds: 20, clients: 5, warmupRounds: 5, rssGrowthLimit: 0.5 });
    expect(result.samples.map((s) => s.round)).toEqual(Array.from({ length: 21 }, (_, i) => i));
    expect(result.roundFailures).toBe(0);
    expect(result.clientErrors).toBe(0);
    for (const check of result.checks) expect(check, check.detail).toMatchObject({ ok: true });
    expect(result.ok).toBe(true);
    // The probe saw the federation: 5 server sockets, their listeners and the clients'.
    const last = result.samples[result.samples.length - 1];
    expect(last.serverSockets).toBe(5);
    expect(last.socketListeners).toBeGreaterThan(0);
    expect(last.clientListeners).toBeGreaterThan(0);
    expect(last.numTensors).toBeGreaterThan(0);
  });

  it("the checks catch a leak in any series", () => {
    const base: SoakSample = {
      round: 0,
      numTensors: 40,
      tensorBytes: 1000,
      rss: 100e6,
      heapUsed: 50e6,
      external: 1e6,
      arrayBuffers: 1e6,
      resources: { Timeout: 10 },
      timers: 10,
      handles: 30,
      serverListeners: 20,
      socketListeners: 100,
      clientListeners: 200,
      serverSockets: 5,
      knownClients: 5,
    };
    const series = (leak: (round: number) => Partial<SoakSample>) =>
      Array.from({ length: 11 }, (_, round) => ({ ...base, round, ...leak(round) }));
    const failing = (samples: SoakSample[]) =>
      evaluateSoak(samples, { warmupRounds: 3, rssGrowthLimit: 0.1 })
        .filter((c) => !c.ok)
        .map((c) => c.name);
    expect(failing(series(() => ({})))).toEqual([]);
    expect(failing(series((r) => ({ numTensors: r === 7 ? 41 : 40 })))).toEqual(["numTensors flat"]);
    expect(failing(series((r) => ({ socketListeners: 100 + r })))).toEqual(["socketListeners not growing"]);
    expect(failing(series((r) => ({ clientListeners: r >= 9 ? 201 : 200 })))).toEqual([
      "clientListeners not growing",
    ]);
    expect(failing(series((r) => ({ timers: r >= 5 ? 11 : 10 })))).toEqual(["timers not growing"]);
    expect(failing(series((r) => ({ rss: 100e6 * (1 + r * 0.02) })))).toEqual([
      "RSS growth < 10% after round 3",
    ]);
    // Growth during the warm-up is allowed: that is what it is for.
    expect(failing(series((r) => ({ timers: Math.min(r, 3), handles: Math.min(r, 3) * 5 })))).toEqual([]);
  });
});
