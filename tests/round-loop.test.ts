import { describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import { FedAvgM } from "../common/strategy/fedavgm.js";
import type { FlatWeights } from "../common/weights.js";
import type { ClientDirectory, ClientProxy, FitOutcome, FitRequest } from "../server/client-proxy.js";
import { RoundLoop } from "../server/round-loop.js";
import type { RoundLoopOptions } from "../server/round-options.js";

/**
 * The round loop driven in memory: fake clients answer after a scripted number of event-loop
 * turns (no timers, so ordering is deterministic), each sending a delta of its own value.
 */
class FakeClient implements ClientProxy {
  fits = 0;
  cancels: string[] = [];
  private pendingCancel: (() => void) | null = null;

  constructor(
    readonly id: string,
    private readonly value: number,
    private readonly turns: number,
    private readonly fail?: FitOutcome & { ok: false },
  ) {}

  async fit(request: FitRequest): Promise<FitOutcome> {
    this.fits++;
    let cancelled = false;
    this.pendingCancel = () => {
      cancelled = true;
    };
    for (let i = 0; i < this.turns && !cancelled; i++) await Promise.resolve();
    this.pendingCancel = null;
    if (cancelled) {
      return { ok: false, clientId: this.id, reason: "cancelled", code: ErrorCode.CANCELLED, message: "x" };
    }
    if (this.fail) return this.fail;
    const n = request.weights.values.length;
    return {
      ok: true,
      clientId: this.id,
      numExamples: 10,
      delta: new Float32Array(n).fill(this.value),
      metrics: { loss: 1, accuracy: 0.5, steps: 1, epochsCompleted: 1, seconds: 0.25 },
      bytes: { sent: n * 4, received: n * 4 },
    };
  }

  cancel(_round: number, reason: string): void {
    this.cancels.push(reason);
    this.pendingCancel?.();
  }
}

function directoryOf(clients: ClientProxy[]): ClientDirectory {
  return { connected: () => clients, waitForClients: async () => true };
}

function loopWith(clients: ClientProxy[], extra: Partial<RoundLoopOptions> = {}): RoundLoop {
  const model: FlatWeights = { specs: [{ name: "w", shape: [4] }], values: new Float32Array(4) };
  return new RoundLoop({
    strategy: new FedAvg({ clientsPerRound: 2 }),
    directory: directoryOf(clients),
    model,
    trainable: new Set(["w"]),
    evaluate: async (m) => ({ loss: 0, accuracy: m.values[0] }),
    rounds: 1,
    deadlineMs: 10_000,
    minAvailableClients: clients.length,
    seed: 1,
    ...extra,
  });
}

describe("round loop (in memory)", () => {
  it("records bytes, per-client timings and failures by kind", async () => {
    const clients = [
      new FakeClient("a", 1, 1),
      new FakeClient("b", 3, 2, {
        ok: false,
        clientId: "b",
        reason: "timeout",
        code: ErrorCode.CLIENT_TIMEOUT,
        message: "late",
      }),
    ];
    const [record] = await loopWith(clients).run();
    expect(record).toMatchObject({
      participants: 1,
      sampled: 2,
      failures: 1,
      failuresByKind: { timeout: 1 },
      dropouts: 0,
      cancelled: 0,
      bytesSent: 16,
      bytesReceived: 16,
    });
    expect(record.clients.map((c) => [c.clientId, c.outcome]).sort()).toEqual([
      ["a", "ok"],
      ["b", "timeout"],
    ]);
    expect(record.clients.find((c) => c.clientId === "a")?.trainSeconds).toBe(0.25);
    for (const c of record.clients) expect(c.seconds).toBeGreaterThanOrEqual(0);
  });

  it("turns a proxy whose fit rejects into an INTERNAL error outcome; the round aggregates the others", async () => {
    const broken: ClientProxy = { id: "broken", fit: () => Promise.reject(new Error("proxy bug")) };
    const loop = loopWith([new FakeClient("a", 1, 1), broken]);
    const [record] = await loop.run();
    expect(record).toMatchObject({ participants: 1, sampled: 2, failures: 1, failuresByKind: { error: 1 } });
    expect(record.failureDetails).toEqual([
      { clientId: "broken", reason: "error", code: ErrorCode.INTERNAL },
    ]);
    expect(Array.from(loop.globalWeights.values)).toEqual([1, 1, 1, 1]);
  });

  it("over-selection samples more clients and aggregates only the first to finish", async () => {
    // Two fast clients (value 1) and two slow ones (value 100): with 100% over-selection all four
    // are sampled, the two fast ones finish first, and the slow ones are cancelled.
    const clients = [
      new FakeClient("fast-1", 1, 1),
      new FakeClient("fast-2", 1, 2),
      new FakeClient("slow-1", 100, 50),
      new FakeClient("slow-2", 100, 60),
    ];
    const loop = loopWith(clients, { overSelection: 1 });
    const [record] = await loop.run();
    expect(record).toMatchObject({ sampled: 4, participants: 2, failures: 0, cancelled: 2 });
    expect(loop.globalWeights.values[0]).toBeCloseTo(1, 6);
    expect(clients[2].cancels).toHaveLength(1);
    expect(clients[3].cancels).toHaveLength(1);
    expect(clients[0].cancels).toHaveLength(0);
  });

  it("without over-selection the slow clients are waited for", async () => {
    const clients = [new FakeClient("fast", 1, 1), new FakeClient("slow", 3, 40)];
    const loop = loopWith(clients);
    const [record] = await loop.run();
    expect(record).toMatchObject({ sampled: 2, participants: 2, cancelled: 0 });
    expect(loop.globalWeights.values[0]).toBeCloseTo(2, 6);
  });

  it("never samples the clients a scripted round has offline", async () => {
    const clients = ["a", "b", "c", "d"].map((id) => new FakeClient(id, 1, 1));
    const loop = loopWith(clients, {
      strategy: new FedAvg({ fractionFit: 1 }),
      beforeRound: () => ({ exclude: new Set(["a", "c"]), expected: 2, offline: 2 }),
    });
    const [record] = await loop.run();
    expect(record).toMatchObject({ sampled: 2, participants: 2, offline: 2 });
    expect(clients.map((c) => c.fits)).toEqual([0, 1, 0, 1]);
  });

  it("refuses an over-selection outside [0, 10]", () => {
    expect(() => loopWith([], { overSelection: -0.5 })).toThrow(/overSelection/);
  });
});

describe("round loop evaluation schedule", () => {
  it("evaluates every k rounds and after the last, repeating the last result in between", async () => {
    let evaluations = 0;
    const clients = [new FakeClient("a", 1, 1), new FakeClient("b", 1, 1)];
    const loop = loopWith(clients, {
      rounds: 5,
      evaluateEvery: 2,
      evaluate: async (m) => {
        evaluations++;
        return { loss: evaluations, accuracy: m.values[0] };
      },
    });
    const records = await loop.run();
    expect(records.map((r) => r.evaluated !== false)).toEqual([true, true, false, true, true]);
    expect(evaluations).toBe(4);
    expect(records[2].loss).toBe(records[1].loss);
    expect(() => loopWith(clients, { evaluateEvery: 0 })).toThrow(/evaluateEvery/);
  });
});

describe("round loop: a non-finite aggregate", () => {
  it("keeps the model and the strategy's momentum when finite updates sum past float32's range", async () => {
    // Each delta is finite (3e38 < FLT_MAX), so no per-update check stops it: the first round moves
    // the model to 3e38, the second would overflow it (and the momentum) to +Inf.
    const clients = [new FakeClient("a", 3e38, 1), new FakeClient("b", 3e38, 1)];
    const strategy = new FedAvgM({ clientsPerRound: 2, momentum: 0.5 });
    const afterFirst: { model: number[]; momentum: unknown }[] = [];
    const loop = loopWith(clients, {
      strategy,
      rounds: 2,
      onRound: (r) => {
        if (r.round === 1)
          afterFirst.push({ model: [...loop.globalWeights.values], momentum: strategy.state() });
      },
    });
    const records = await loop.run();
    expect(records[0].kept).toBeUndefined();
    expect(afterFirst[0].model.every((v) => Number.isFinite(v) && v > 1e38)).toBe(true);
    expect(records[1].kept).toMatch(/^BAD_AGGREGATE: the aggregate is not finite \(Infinity at index 0\)/);
    expect([...loop.globalWeights.values]).toEqual(afterFirst[0].model);
    expect(strategy.state()).toEqual(afterFirst[0].momentum);
    expect(records[1].participants).toBe(2);
  });
});
