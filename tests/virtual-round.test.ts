import { describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import type { FlatWeights } from "../common/weights.js";
import type { ClientDirectory, ClientProxy, FitOutcome, FitRequest } from "../server/client-proxy.js";
import { RoundLoop } from "../server/round-loop.js";
import type { RoundLoopOptions } from "../server/round-options.js";
import { placeOnClock, type VirtualClock } from "../server/virtual-round.js";
import type {
  ExchangeTimingInput,
  FitTimingInput,
  SimulatedFit,
  VirtualTiming,
} from "../server/virtual-timing.js";

/**
 * The round loop on the virtual clock, in memory. Fake clients finish their real fits after a
 * scripted number of event-loop turns; a fake timing gives each a simulated duration. The tests
 * script wall-clock order as the reverse of simulated order, so a result that followed the wall
 * clock would come out wrong.
 */
class FakeClient implements ClientProxy {
  fits = 0;
  cancels = 0;

  constructor(
    readonly id: string,
    private readonly value: number,
    private readonly turns: number,
  ) {}

  async fit(request: FitRequest): Promise<FitOutcome> {
    this.fits++;
    for (let i = 0; i < this.turns; i++) await Promise.resolve();
    const n = request.weights.values.length;
    return {
      ok: true,
      clientId: this.id,
      numExamples: 10,
      delta: new Float32Array(n).fill(this.value),
      metrics: { loss: 1, accuracy: 0.5, steps: 1, epochsCompleted: 1, seconds: 0.1 },
      bytes: { sent: n * 4, received: n * 4 },
    };
  }

  cancel(): void {
    this.cancels++;
  }
}

interface FakeDevice {
  /** Simulated seconds from request to reply. */
  seconds: number;
  /** Known before training; default: the full duration. */
  earliest?: number;
  /** Drops out this many seconds after the request instead of replying. */
  dropsAfter?: number;
  /** Simulated [from, to) windows in which the device is available; default: always. */
  online?: [number, number][];
}

class FakeTiming implements VirtualTiming {
  readonly calls: FitTimingInput[] = [];

  constructor(private readonly devices: Record<string, FakeDevice>) {}

  fit(input: FitTimingInput): SimulatedFit {
    this.calls.push(input);
    const d = this.devices[input.clientId];
    if (d.dropsAfter !== undefined)
      return { arrived: false, at: input.sentAt + d.dropsAfter, reason: "battery" };
    return { arrived: true, at: input.sentAt + d.seconds };
  }

  earliestArrival(input: Omit<FitTimingInput, "bytesUp">): number {
    const d = this.devices[input.clientId];
    return input.sentAt + (d.earliest ?? d.seconds);
  }

  exchange(input: ExchangeTimingInput): SimulatedFit {
    return { arrived: true, at: input.sentAt };
  }

  isAvailable(clientId: string, at: number): boolean {
    const windows = this.devices[clientId].online;
    return windows === undefined || windows.some(([from, to]) => at >= from && at < to);
  }
}

function directoryOf(clients: ClientProxy[]): ClientDirectory {
  return { connected: () => clients, waitForClients: async () => true };
}

function loopWith(
  clients: ClientProxy[],
  timing: VirtualTiming,
  clock: Partial<VirtualClock> = {},
  extra: Partial<RoundLoopOptions> = {},
): RoundLoop {
  const model: FlatWeights = { specs: [{ name: "w", shape: [4] }], values: new Float32Array(4) };
  return new RoundLoop({
    strategy: new FedAvg({ fractionFit: 1 }),
    directory: directoryOf(clients),
    model,
    trainable: new Set(["w"]),
    evaluate: async (m) => ({ loss: 0, accuracy: m.values[0] }),
    rounds: 1,
    deadlineMs: 60_000,
    minAvailableClients: clients.length,
    seed: 1,
    virtualClock: { timing, deadlineSeconds: 600, ...clock },
    ...extra,
  });
}

const arrivals = (record: {
  clients: { clientId: string; simulatedArrivedAt?: number; outcome: string }[];
}) => record.clients.map((c) => [c.clientId, c.simulatedArrivedAt, c.outcome]);

describe("round loop on the virtual clock", () => {
  it("starts no round past the simulated-time budget", async () => {
    const clients = [new FakeClient("a", 1, 1), new FakeClient("b", 2, 1)];
    const timing = new FakeTiming({ a: { seconds: 100 }, b: { seconds: 100 } });
    const loop = loopWith(clients, timing, { budgetSeconds: 250 }, { rounds: 10 });
    const records = await loop.run();
    // Rounds sample at 0, 100 and 200 s; the fourth would start at 300 s, past the budget.
    expect(records.map((r) => r.simulatedStart)).toEqual([0, 100, 200]);
    expect(loop.stopReason).toBe("simulated-time budget of 250 s reached");
  });

  it("does not idle past the budget waiting for an available client", async () => {
    // Online again only at 400 s: the second round would start after the 300 s budget.
    const online: [number, number][] = [
      [0, 50],
      [400, 10_000],
    ];
    const clients = [new FakeClient("a", 1, 1)];
    const timing = new FakeTiming({ a: { seconds: 100, online } });
    const loop = loopWith(clients, timing, { budgetSeconds: 300 }, { rounds: 5 });
    const records = await loop.run();
    expect(records).toHaveLength(1);
    expect(loop.stopReason).toMatch(/budget of 300 s/);
  });

  it("takes arrivals in simulated order, whatever order the real fits finish in", async () => {
    // Wall clock: c finishes first, a last. Simulated: a (100 s) before b (200 s) before c (300 s).
    const clients = [new FakeClient("a", 1, 30), new FakeClient("b", 2, 20), new FakeClient("c", 3, 1)];
    const timing = new FakeTiming({ a: { seconds: 100 }, b: { seconds: 200 }, c: { seconds: 300 } });
    const [record] = await loopWith(clients, timing).run();
    expect(arrivals(record)).toEqual([
      ["a", 100, "ok"],
      ["b", 200, "ok"],
      ["c", 300, "ok"],
    ]);
    expect(record).toMatchObject({ simulatedStart: 0, simulatedSeconds: 300, participants: 3, offline: 0 });
    for (const c of record.clients) expect(c.simulatedSentAt).toBe(0);
    // The timing saw the real payload sizes both ways.
    expect(timing.calls.map((c) => [c.clientId, c.bytesDown, c.bytesUp, c.epochs]).sort()).toEqual([
      ["a", 16, 16, 1],
      ["b", 16, 16, 1],
      ["c", 16, 16, 1],
    ]);
  });

  it("over-selection keeps the first arrivals in simulated time and cancels the rest", async () => {
    // Two needed, four sampled. The simulated-fast clients (value 1) are the slowest in wall time.
    const clients = [
      new FakeClient("fast-1", 1, 40),
      new FakeClient("fast-2", 1, 30),
      new FakeClient("slow-1", 100, 2),
      new FakeClient("slow-2", 100, 1),
    ];
    const timing = new FakeTiming({
      "fast-1": { seconds: 50 },
      "fast-2": { seconds: 70 },
      "slow-1": { seconds: 400 },
      "slow-2": { seconds: 500 },
    });
    const loop = loopWith(
      clients,
      timing,
      {},
      { strategy: new FedAvg({ clientsPerRound: 2 }), overSelection: 1 },
    );
    const [record] = await loop.run();
    expect(record).toMatchObject({
      sampled: 4,
      participants: 2,
      failures: 0,
      cancelled: 2,
      simulatedSeconds: 70,
    });
    expect(loop.globalWeights.values[0]).toBeCloseTo(1, 6);
    expect(arrivals(record)).toEqual([
      ["fast-1", 50, "ok"],
      ["fast-2", 70, "ok"],
      ["slow-1", 70, "cancelled"],
      ["slow-2", 70, "cancelled"],
    ]);
    // The simulated coordinator never took the cancelled clients' uploads.
    expect(record.bytesReceived).toBe(2 * 16);
  });

  it("times out late arrivals at the simulated deadline, and a client that cannot make it never trains", async () => {
    const clients = [
      new FakeClient("ok", 1, 5),
      new FakeClient("late", 2, 1),
      new FakeClient("hopeless", 3, 1),
    ];
    const timing = new FakeTiming({
      ok: { seconds: 100 },
      // Its lower bound is inside the deadline, but the real upload makes it late.
      late: { seconds: 700, earliest: 500 },
      hopeless: { seconds: 2000 },
    });
    const loop = loopWith(clients, timing);
    const [record] = await loop.run();
    expect(clients.map((c) => c.fits)).toEqual([1, 1, 0]);
    expect(arrivals(record)).toEqual([
      ["ok", 100, "ok"],
      ["hopeless", 600, "timeout"],
      ["late", 600, "timeout"],
    ]);
    expect(record).toMatchObject({
      participants: 1,
      failures: 2,
      failuresByKind: { timeout: 2 },
      simulatedSeconds: 600,
    });
    expect(loop.globalWeights.values[0]).toBeCloseTo(1, 6);
  });

  it("turns a simulated dropout into a disconnect at its time", async () => {
    const clients = [new FakeClient("a", 1, 1), new FakeClient("b", 5, 1)];
    const timing = new FakeTiming({ a: { seconds: 300 }, b: { seconds: 100, dropsAfter: 40 } });
    const loop = loopWith(clients, timing);
    const [record] = await loop.run();
    expect(arrivals(record)).toEqual([
      ["b", 40, "disconnect"],
      ["a", 300, "ok"],
    ]);
    expect(record).toMatchObject({ participants: 1, dropouts: 1, failuresByKind: { disconnect: 1 } });
    expect(record.failureDetails).toEqual([
      { clientId: "b", reason: "disconnect", code: ErrorCode.CLIENT_DISCONNECTED },
    ]);
    expect(loop.globalWeights.values[0]).toBeCloseTo(1, 6);
  });

  it("samples only the clients available at the round's simulated start, and idles until one is", async () => {
    const clients = ["a", "b", "c"].map((id) => new FakeClient(id, 1, 1));
    const timing = new FakeTiming({
      a: { seconds: 100, online: [[0, 150]] },
      b: { seconds: 100, online: [[300, 10_000]] },
      c: { seconds: 100, online: [[0, 50]] },
    });
    const loop = loopWith(clients, timing, { serverSeconds: 20 }, { rounds: 3 });
    const records = await loop.run();
    // Round 1 at 0: a and c. Round 2 at 120: only a. Round 3 at 240: nobody until b at 300.
    expect(records.map((r) => [r.simulatedStart, r.simulatedSeconds, r.sampled, r.offline])).toEqual([
      [0, 100, 2, 1],
      [120, 100, 1, 2],
      [300, 100, 1, 2],
    ]);
    expect(clients.map((c) => c.fits)).toEqual([2, 1, 1]);
  });

  it("continues the simulated clock from a resumed run's last record", async () => {
    const clients = [new FakeClient("a", 1, 1)];
    const timing = new FakeTiming({ a: { seconds: 10 } });
    const first = await loopWith(clients, timing, { serverSeconds: 5 }, { rounds: 2 }).run();
    expect(first.map((r) => r.simulatedStart)).toEqual([0, 15]);
    const resumed = loopWith(
      clients,
      timing,
      { serverSeconds: 5 },
      { rounds: 3, resume: { records: first, rngState: [1, 2, 3, 4] } },
    );
    const all = await resumed.run();
    expect(all.map((r) => r.simulatedStart)).toEqual([0, 15, 30]);
  });

  it("leaves the real clock's records without simulated fields", async () => {
    const clients = [new FakeClient("a", 1, 1)];
    const timing = new FakeTiming({ a: { seconds: 10 } });
    const loop = loopWith(clients, timing, {}, { virtualClock: undefined });
    const [record] = await loop.run();
    expect(record.simulatedStart).toBeUndefined();
    expect(record.simulatedSeconds).toBeUndefined();
    expect(record.clients[0].simulatedArrivedAt).toBeUndefined();
    expect(timing.calls).toHaveLength(0);
  });
});

describe("placeOnClock", () => {
  const clockWith = (timing: FakeTiming): VirtualClock => ({ timing, deadlineSeconds: 600 });
  const ok = (sent: number): FitOutcome => ({
    ok: true,
    clientId: "a",
    numExamples: 1,
    delta: new Float32Array(4),
    bytes: { sent, received: 16 },
  });

  it("charges every device at least the trainable weights, though a pool session sent them once", () => {
    const timing = new FakeTiming({ a: { seconds: 5 } });
    // A pool's second virtual client on a version: nothing new crossed the wire.
    placeOnClock(clockWith(timing), ok(0), 0, 600, 1, 16);
    // A connection that also received frozen tensors: the wire's larger count stands.
    const placed = placeOnClock(clockWith(timing), ok(40), 0, 600, 1, 16);
    expect(timing.calls.map((c) => c.bytesDown)).toEqual([16, 40]);
    expect(placed.outcome.bytes).toEqual({ sent: 40, received: 16 });
  });

  it("keeps the wire's count in the record of a device that dropped", () => {
    const timing = new FakeTiming({ a: { seconds: 5, dropsAfter: 2 } });
    const placed = placeOnClock(clockWith(timing), ok(0), 0, 600, 1, 16);
    expect(timing.calls[0].bytesDown).toBe(16);
    expect(placed.outcome.ok).toBe(false);
    expect(placed.outcome.bytes).toEqual({ sent: 0, received: 0 });
  });
});
