import { describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import type { Rng } from "../common/rng.js";
import { FedAsync } from "../common/strategy/fedasync.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import { FedBuff } from "../common/strategy/fedbuff.js";
import type { ClientInfo, FitPlan } from "../common/strategy/strategy.js";
import type { FlatWeights } from "../common/weights.js";
import { AsyncLoop, type AsyncLoopOptions } from "../server/async-loop.js";
import { nextEvent } from "../server/async-order.js";
import type { VersionRecord } from "../server/async-records.js";
import type { ClientDirectory, ClientProxy, FitOutcome, FitRequest } from "../server/client-proxy.js";
import { RoundLoop } from "../server/round-loop.js";
import type { FitTimingInput, VirtualTiming } from "../server/virtual-timing.js";

/**
 * The asynchronous loop in memory. Fake clients answer after a scripted number of event-loop
 * turns (no timers), so the wall-clock order of replies is fixed by the test; their update
 * pulls the weights they received halfway toward a target of their own, so every update depends
 * on the version it trained on.
 */
class FakeClient implements ClientProxy {
  readonly requests: FitRequest[] = [];
  cancels = 0;

  constructor(
    readonly id: string,
    private readonly target: number,
    private readonly turns = 1,
    private readonly fail?: FitOutcome & { ok: false },
  ) {}

  async fit(request: FitRequest): Promise<FitOutcome> {
    this.requests.push(request);
    for (let i = 0; i < this.turns; i++) await Promise.resolve();
    if (this.fail) return this.fail;
    const w = request.weights.values;
    const delta = new Float32Array(w.length);
    for (let i = 0; i < w.length; i++) delta[i] = 0.5 * (this.target + i - w[i]);
    return {
      ok: true,
      clientId: this.id,
      numExamples: 10,
      delta,
      metrics: { loss: 1, accuracy: 0.5, steps: 1, epochsCompleted: 1, seconds: 0.1 },
      bytes: { sent: w.byteLength, received: delta.byteLength },
    };
  }

  cancel(): void {
    this.cancels++;
  }
}

function directoryOf(clients: ClientProxy[]): ClientDirectory {
  return { connected: () => clients, waitForClients: async () => true };
}

function model(): FlatWeights {
  return { specs: [{ name: "w", shape: [3] }], values: new Float32Array(3) };
}

/** Every fit takes `seconds[id]` simulated seconds; nobody drops out; everyone is available. */
function fixedTiming(
  seconds: Record<string, number>,
  lowerBounds: Record<string, number> = {},
): VirtualTiming {
  return {
    fit: (input: FitTimingInput) => ({ arrived: true, at: input.sentAt + (seconds[input.clientId] ?? 1) }),
    earliestArrival: (input) => input.sentAt + (lowerBounds[input.clientId] ?? 0.5),
    exchange: (input) => ({ arrived: true, at: input.sentAt }),
    isAvailable: () => true,
  };
}

function asyncLoop(clients: ClientProxy[], extra: Partial<AsyncLoopOptions>): AsyncLoop {
  return new AsyncLoop({
    strategy: new FedAsync({ concurrency: 2, mixing: 0.5 }),
    directory: directoryOf(clients),
    model: model(),
    trainable: new Set(["w"]),
    evaluate: async (m) => ({ loss: 0, accuracy: m.values[0] }),
    rounds: 3,
    deadlineMs: 10_000,
    minAvailableClients: clients.length,
    seed: 3,
    ...extra,
  });
}

/** The records without their wall-clock fields, for comparing runs. */
function simulatedView(records: readonly VersionRecord[]) {
  return records.map((r) => ({
    round: r.round,
    accuracy: r.accuracy,
    staleness: r.staleness,
    simulatedStart: r.simulatedStart,
    simulatedSeconds: r.simulatedSeconds,
    updates: r.updates.map(({ seconds: _wall, ...u }) => u),
  }));
}

describe("conservative event order", () => {
  it("takes a known arrival only when no fit in training could arrive earlier", () => {
    const settled = { clientId: "b", lowerBound: 0, settledAt: 10 };
    expect(nextEvent([settled, { clientId: "a", lowerBound: 9, settledAt: null }], Infinity)).toEqual({
      kind: "wait",
    });
    expect(nextEvent([settled, { clientId: "c", lowerBound: 11, settledAt: null }], Infinity)).toEqual({
      kind: "arrival",
      index: 0,
      at: 10,
    });
    // A tie with a fit still training: the smaller id could go first, so wait; a larger one cannot.
    expect(nextEvent([settled, { clientId: "a", lowerBound: 10, settledAt: null }], Infinity).kind).toBe(
      "wait",
    );
    expect(nextEvent([settled, { clientId: "c", lowerBound: 10, settledAt: null }], Infinity).kind).toBe(
      "arrival",
    );
    // Equal settled times go by client id; arrivals go before a dispatch at the same time.
    expect(nextEvent([settled, { clientId: "a", lowerBound: 0, settledAt: 10 }], 10)).toEqual({
      kind: "arrival",
      index: 1,
      at: 10,
    });
    expect(nextEvent([settled], 5)).toEqual({ kind: "dispatch", at: 5 });
    expect(nextEvent([{ clientId: "a", lowerBound: 5, settledAt: null }], 5).kind).toBe("wait");
    expect(nextEvent([], Infinity).kind).toBe("wait");
  });
});

describe("asynchronous loop (in memory)", () => {
  it("takes no arrival past the simulated-time budget", async () => {
    const clients = [new FakeClient("a", 1), new FakeClient("b", 2)];
    const loop = asyncLoop(clients, {
      rounds: 100,
      virtualClock: { timing: fixedTiming({ a: 10, b: 35 }), deadlineSeconds: 100, budgetSeconds: 50 },
    });
    const records = (await loop.run()) as VersionRecord[];
    const arrivals = records.flatMap((r) => r.updates.map((u) => u.simulatedArrivedAt ?? Number.NaN));
    // a arrives at 10, 20, 30, 40, 50 and b at 35; a's next (60) is past the budget.
    expect(arrivals).toEqual([10, 20, 30, 35, 40, 50]);
    expect(loop.stopReason).toBe("simulated-time budget of 50 s reached");
  });

  it("on the virtual clock takes arrivals in simulated order even when wall-clock order is reversed", async () => {
    // "fast" is fast in simulated time but the slowest in wall-clock turns; "slow" the reverse.
    const clients = [new FakeClient("fast", 1, 60), new FakeClient("slow", 2, 1)];
    const loop = asyncLoop(clients, {
      rounds: 2,
      virtualClock: { timing: fixedTiming({ fast: 10, slow: 25 }), deadlineSeconds: 100 },
    });
    const records = (await loop.run()) as VersionRecord[];
    expect(records.map((r) => r.updates.map((u) => [u.clientId, u.trainedOn, u.staleness]))).toEqual([
      [["fast", 0, 0]],
      // fast was sent again at t = 10 and arrives at t = 20, before slow's t = 25.
      [["fast", 1, 0]],
    ]);
    expect(records[0]).toMatchObject({ simulatedStart: 0, simulatedSeconds: 10 });
    expect(records[1]).toMatchObject({ simulatedStart: 10, simulatedSeconds: 10 });
    expect(records[1].updates[0]).toMatchObject({ simulatedSeconds: 10, simulatedArrivedAt: 20 });
    expect(loop.simulatedNow).toBe(20);
    // slow's reply was in (in wall-clock time) long before fast's, but it arrives at t = 25 in
    // simulated time, after the run's last version.
    expect(clients[1].requests).toHaveLength(1);
  });

  it("records staleness: a slow client's update meets newer versions", async () => {
    const clients = [new FakeClient("a", 1), new FakeClient("b", 2)];
    const loop = asyncLoop(clients, {
      rounds: 4,
      virtualClock: { timing: fixedTiming({ a: 10, b: 35 }), deadlineSeconds: 100 },
    });
    const records = (await loop.run()) as VersionRecord[];
    const updates = records.flatMap((r) => r.updates);
    // a arrives at 10, 20, 30; b (sent at 0 on version 0) at 35, when version 3 is current.
    expect(updates.map((u) => [u.clientId, u.trainedOn, u.staleness])).toEqual([
      ["a", 0, 0],
      ["a", 1, 0],
      ["a", 2, 0],
      ["b", 0, 3],
    ]);
    // FedAsync: αₜ = 0.5 · 1/√(1 + 3) = 0.25 for the stale update.
    expect(updates[3].weight).toBeCloseTo(0.25, 12);
    expect(records[3].staleness).toEqual({ mean: 3, max: 3 });
    // The stale update is mixed from the model b trained on (version 0, all zeros): b's model is
    // 0 + ½·(2 + i − 0), and x₄ = 0.75·x₃ + 0.25·(1 + i/2).
    const x3 = records[2].accuracy;
    expect(loop.globalWeights.values[0]).toBeCloseTo(0.75 * x3 + 0.25 * 1, 6);
  });

  it("is reproducible: the same seed gives the same records", async () => {
    const run = async () => {
      const clients = ["a", "b", "c", "d", "e"].map((id, i) => new FakeClient(id, i, 1 + ((i * 7) % 5)));
      const loop = asyncLoop(clients, {
        strategy: new FedBuff({ concurrency: 3, bufferSize: 2 }),
        rounds: 5,
        virtualClock: {
          timing: fixedTiming({ a: 3, b: 7, c: 4, d: 9, e: 5 }),
          deadlineSeconds: 100,
        },
      });
      return simulatedView((await loop.run()) as VersionRecord[]);
    };
    const first = await run();
    expect(first).toHaveLength(5);
    expect(first.flatMap((r) => r.updates).some((u) => u.staleness > 0)).toBe(true);
    expect(await run()).toEqual(first);
  });

  it("frees the slot of a failed fit and records the failure", async () => {
    const broken = new FakeClient("broken", 0, 1, {
      ok: false,
      clientId: "broken",
      reason: "rejected",
      code: ErrorCode.BAD_SHAPE,
      message: "wrong shape",
    });
    const clients = [broken, new FakeClient("good", 1, 2)];
    const loop = asyncLoop(clients, { strategy: new FedBuff({ concurrency: 2, bufferSize: 2 }), rounds: 2 });
    const records = (await loop.run()) as VersionRecord[];
    expect(records).toHaveLength(2);
    const failures = records.reduce((n, r) => n + r.failures, 0);
    expect(failures).toBeGreaterThan(0);
    expect(records.flatMap((r) => r.failureDetails).every((f) => f.code === ErrorCode.BAD_SHAPE)).toBe(true);
    expect(records.flatMap((r) => r.updates).every((u) => u.clientId === "good")).toBe(true);
    expect(records.every((r) => r.participants === 2)).toBe(true);
  });

  it("turns a proxy whose fit rejects into an INTERNAL error outcome and frees its slot", async () => {
    const broken: ClientProxy = { id: "broken", fit: () => Promise.reject(new Error("proxy bug")) };
    const clients = [broken, new FakeClient("good", 1, 2)];
    const loop = asyncLoop(clients, { strategy: new FedBuff({ concurrency: 2, bufferSize: 2 }), rounds: 2 });
    const records = (await loop.run()) as VersionRecord[];
    expect(records).toHaveLength(2);
    const failures = records.flatMap((r) => r.failureDetails);
    expect(failures.length).toBeGreaterThan(0);
    for (const f of failures)
      expect(f).toEqual({ clientId: "broken", reason: "error", code: ErrorCode.INTERNAL });
    expect(records.flatMap((r) => r.updates).every((u) => u.clientId === "good")).toBe(true);
  });

  it("on the virtual clock, a fit that cannot make the deadline times out without training", async () => {
    const clients = [new FakeClient("far", 0), new FakeClient("near", 1)];
    const loop = asyncLoop(clients, {
      rounds: 2,
      virtualClock: { timing: fixedTiming({ far: 500, near: 60 }, { far: 200 }), deadlineSeconds: 100 },
    });
    const records = (await loop.run()) as VersionRecord[];
    expect(clients[0].requests).toHaveLength(0);
    // near arrives at 60 and 120; far's timeout at 100 belongs to the second version.
    expect(records.map((r) => r.updates.map((u) => u.clientId))).toEqual([["near"], ["near"]]);
    expect(records[0].failures).toBe(0);
    expect(records[1].failuresByKind).toEqual({ timeout: 1 });
    expect(records[1].clients.find((c) => c.outcome === "timeout")).toMatchObject({
      clientId: "far",
      simulatedArrivedAt: 100,
    });
  });

  it("on the real clock takes replies as they come and calls off the fits still training at the end", async () => {
    const clients = [new FakeClient("quick", 1, 1), new FakeClient("stuck", 2, 400)];
    const loop = asyncLoop(clients, { rounds: 3 });
    const records = (await loop.run()) as VersionRecord[];
    expect(records.map((r) => r.updates.map((u) => [u.clientId, u.staleness]))).toEqual([
      [["quick", 0]],
      [["quick", 0]],
      [["quick", 0]],
    ]);
    expect(clients[1].cancels).toBe(1);
    expect(records.every((r) => r.simulatedSeconds === undefined)).toBe(true);
  });

  it("stops with a reason when fit after fit fails and no version can be published", async () => {
    const clients = [new FakeClient("a", 0), new FakeClient("b", 0)];
    const loop = asyncLoop(clients, {
      rounds: 1,
      virtualClock: { timing: fixedTiming({}, { a: 500, b: 500 }), deadlineSeconds: 100 },
    });
    expect(await loop.run()).toEqual([]);
    expect(loop.stopReason).toContain("in a row failed");
  });
});

describe("FedBuff = FedAvg", () => {
  it("with K = M, η = 1, equal data sizes and equal simulated durations, every flush equals a FedAvg round on the same clients", async () => {
    const ids = ["c0", "c1", "c2", "c3", "c4", "c5"];
    const rounds = 4;
    const concurrency = 3;
    const asyncClients = ids.map((id, i) => new FakeClient(id, i * 0.7 - 1, 1 + ((i * 5) % 4)));
    const asyncModels: number[][] = [];
    const asyncModel = model();
    const fedbuff = asyncLoop(asyncClients, {
      model: asyncModel,
      onRound: () => {
        asyncModels.push([...asyncModel.values]);
      },
      strategy: new FedBuff({ concurrency, bufferSize: concurrency, serverLearningRate: 1 }),
      rounds,
      virtualClock: {
        timing: fixedTiming(Object.fromEntries(ids.map((id) => [id, 5]))),
        deadlineSeconds: 100,
      },
    });
    const records = (await fedbuff.run()) as VersionRecord[];
    // All M arrive together and are taken before the next dispatch: never stale.
    expect(records.flatMap((r) => r.updates.map((u) => u.staleness))).toEqual(
      new Array(rounds * concurrency).fill(0),
    );
    const sampled = records.map((r) => r.updates.map((u) => u.clientId).sort());
    expect(new Set(sampled.map((s) => s.join())).size).toBeGreaterThan(1);

    // FedAvg samples exactly the clients FedBuff dispatched for each version.
    class Scripted extends FedAvg {
      override configureFit(round: number, _available: readonly ClientInfo[], _rng: Rng): FitPlan {
        return { clientIds: sampled[round - 1], config: this.fitConfigFor(round) };
      }
    }
    const syncModels: number[][] = [];
    const sync = new RoundLoop({
      strategy: new Scripted(),
      directory: directoryOf(ids.map((id, i) => new FakeClient(id, i * 0.7 - 1))),
      model: model(),
      trainable: new Set(["w"]),
      evaluate: async () => ({ loss: 0, accuracy: 0 }),
      rounds,
      deadlineMs: 10_000,
      minAvailableClients: ids.length,
      seed: 3,
      onRound: () => {
        syncModels.push([...sync.globalWeights.values]);
      },
    });
    await sync.run();
    expect(asyncModels).toHaveLength(rounds);
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < 3; i++) expect(asyncModels[r][i]).toBeCloseTo(syncModels[r][i], 6);
    }
    // The model moved: the comparison is not between two untouched zeros.
    expect(Math.abs(asyncModels[rounds - 1][2])).toBeGreaterThan(0.1);
  });
});
