import { afterEach, describe, expect, it, vi } from "vitest";
import { ClientSecAgg } from "../client/secagg-session.js";
import { SecAggServerSession } from "../common/crypto/secagg/index.js";
import { encodeWeightedVector } from "../common/crypto/secagg/weighted-vector.js";
import { describeError, ErrorCode, FedsimError } from "../common/errors.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import type { FlatWeights } from "../common/weights.js";
import { fromWire, toWire } from "../common/wire-json.js";
import { Fleet } from "../scenarios/sim/fleet.js";
import { type AvailabilitySource, type SimClient, SimulatedTiming } from "../scenarios/sim/virtual-timing.js";
import type { ClientProxy, FitOutcome, FitRequest, SecAggStage } from "../server/client-proxy.js";
import { SecAggPlugin } from "../server/plugins/secagg-plugin.js";
import { RoundLoop } from "../server/round-loop.js";
import type { RoundRecord } from "../server/round-record.js";

/**
 * Secure aggregation on the virtual clock, in memory: real SecAgg client sessions behind fake
 * proxies, the real plugin and SimulatedTiming. Each stage's messages take simulated time from
 * their real sizes, and a device that leaves between its masked input and unmasking is a dropout
 * of the unmasking stage, recovered by the others' shares.
 */
class SecAggClient implements ClientProxy {
  private readonly session = new ClientSecAgg();

  constructor(
    readonly id: string,
    /** Every coordinate of its update. */
    private readonly value: number,
    /** Its example count: its weight in the sum. */
    private readonly examples: number,
    /** A stage at which its socket's wall-clock timeout fires instead of an answer. */
    private readonly silentAt?: SecAggStage,
  ) {}

  async secagg(stage: SecAggStage, payload: unknown): Promise<unknown> {
    if (stage === this.silentAt) throw new Error("operation has timed out");
    try {
      return toWire({ ok: true, message: await this.session.handle(this.id, stage, fromWire(payload)) });
    } catch (err) {
      const code = err instanceof FedsimError ? err.code : ErrorCode.SECAGG_PROTOCOL;
      return { ok: false, code, message: describeError(err) };
    }
  }

  async fit(request: FitRequest): Promise<FitOutcome> {
    const n = request.weights.values.length;
    const encoding = request.secagg;
    if (!encoding) throw new Error("not a SecAgg round");
    const delta = new Float32Array(n).fill(this.value);
    const masked = this.session.mask(request.round, encodeWeightedVector(delta, this.examples, encoding));
    return {
      ok: true,
      clientId: this.id,
      delta: new Float32Array(0),
      masked,
      bytes: { sent: n * 4, received: (n + 1) * 4 },
    };
  }
}

// a, b and c train 10 examples (0.1 s of compute), d 1000 (10 s): c's masked input is in long
// before d's, and c leaves at 5 s, while the coordinator still waits for d.
const examples = { a: 10, b: 10, c: 10, d: 1000 };
const values = { a: 0.1, b: 0.2, c: 0.3, d: 0.4 };
const ids = Object.keys(examples) as (keyof typeof examples)[];
const fleet = new Fleet([{ name: "one", speed: 1, downlinkMbps: 8, uplinkMbps: 2, latencyMs: 50 }], 1);
const clients = new Map<string, SimClient>(ids.map((id, index) => [id, { index, examples: examples[id] }]));

function leaving(leavesAt: Record<number, number>): AvailabilitySource {
  return {
    isAvailable: (index, at) => !(leavesAt[index] !== undefined && at >= leavesAt[index]),
    interruptedAt: (index, from, to) => {
      const t = leavesAt[index];
      return t === undefined || to <= t ? undefined : Math.max(from, t);
    },
  };
}

async function run(
  leavesAt: Record<number, number>,
  silent: { id?: string; stage?: SecAggStage } = {},
): Promise<{ record: RoundRecord; model: FlatWeights }> {
  const timing = new SimulatedTiming({
    fleet,
    clients,
    seed: 5,
    secondsPerExample: 0.01,
    availability: leaving(leavesAt),
  });
  const members = ids.map(
    (id) => new SecAggClient(id, values[id], examples[id], silent.id === id ? silent.stage : undefined),
  );
  const model: FlatWeights = { specs: [{ name: "w", shape: [6] }], values: new Float32Array(6) };
  const settings = { graph: "complete" as const, clipRange: 1, weighted: true, maxWeight: 1000 };
  const loop = new RoundLoop({
    strategy: new FedAvg({ fractionFit: 1 }),
    directory: { connected: () => members, waitForClients: async () => true },
    model,
    trainable: new Set(["w"]),
    evaluate: async () => ({ loss: 0, accuracy: 0 }),
    rounds: 1,
    deadlineMs: 60_000,
    minAvailableClients: members.length,
    seed: 1,
    plugin: new SecAggPlugin({ ...settings, stageTimeoutMs: 60_000, seed: 1 }, () => {}),
    virtualClock: { timing, deadlineSeconds: 600 },
  });
  const [record] = await loop.run();
  return { record, model };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("secure aggregation on the virtual clock", () => {
  it("a client that leaves between masked input and unmasking: the others' shares recover the survivors' sum", async () => {
    const unmasked = vi.spyOn(SecAggServerSession.prototype, "receiveUnmaskResponse");
    const { record, model } = await run({ 2: 5 });
    // c's unmasking reply was computed for real, but in simulated time c had gone: the coordinator
    // never took it, and unmasked with a, b and d's shares.
    expect(unmasked.mock.calls.map(([id]) => id).sort()).toEqual(["a", "b", "d"]);
    expect(record.kept).toBeUndefined();
    // All four masked inputs are in the sum: the example-weighted mean of their updates.
    expect(record.participants).toBe(4);
    const mean = (10 * 0.1 + 10 * 0.2 + 10 * 0.3 + 1000 * 0.4) / 1030;
    for (const v of model.values) expect(v).toBeCloseTo(mean, 5);

    // Every stage took simulated time, and the round's duration is the stages plus the fits.
    const stages = record.simulatedStages ?? {};
    expect(Object.keys(stages)).toEqual(["advertise", "share", "routed", "unmask"]);
    for (const seconds of Object.values(stages)) expect(seconds).toBeGreaterThan(0.1);
    const setup = stages.advertise + stages.share + stages.routed;
    for (const fit of record.clients) expect(fit.simulatedSentAt).toBeCloseTo(setup, 9);
    const fitsEnd = Math.max(...record.clients.map((c) => c.simulatedArrivedAt ?? Number.NaN));
    expect(record.simulatedSeconds).toBeCloseTo(fitsEnd + stages.unmask, 9);
  });

  it("a client that leaves during the key stages is excluded, and the round goes on without it", async () => {
    const { record, model } = await run({ 1: 0.05 });
    expect(record.failureDetails).toEqual([
      { clientId: "b", reason: "disconnect", code: ErrorCode.CLIENT_DISCONNECTED },
    ]);
    expect(record.participants).toBe(3);
    const mean = (10 * 0.1 + 10 * 0.3 + 1000 * 0.4) / 1020;
    for (const v of model.values) expect(v).toBeCloseTo(mean, 5);
  });

  it("a stage reply the wall-clock safety net gave up on is a timeout at the stage's simulated deadline", async () => {
    const { record } = await run({}, { id: "a", stage: "share" });
    expect(record.failureDetails).toEqual([
      { clientId: "a", reason: "timeout", code: ErrorCode.CLIENT_TIMEOUT },
    ]);
    expect(record.simulatedStages?.share).toBe(600);
    expect(record.participants).toBe(3);
  });

  it("the same seed gives the same record", async () => {
    const wallFree = ({ seconds: _s, startedAt: _t, clients: timings, ...rest }: RoundRecord) => ({
      ...rest,
      clients: timings.map(({ startSeconds: _a, seconds: _b, ...timing }) => timing),
    });
    const once = await run({ 2: 5 });
    const twice = await run({ 2: 5 });
    expect(wallFree(twice.record)).toEqual(wallFree(once.record));
    expect(twice.model.values).toEqual(once.model.values);
  });
});
