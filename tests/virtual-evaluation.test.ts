import { describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import type { EvaluateReply } from "../common/protocol.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import type { MetricsResult } from "../common/strategy/metrics.js";
import type { FlatWeights } from "../common/weights.js";
import { EVALUATION_COST } from "../scenarios/sim/fit-duration.js";
import { Fleet } from "../scenarios/sim/fleet.js";
import { type AvailabilitySource, type SimClient, SimulatedTiming } from "../scenarios/sim/virtual-timing.js";
import type { ClientProxy, EvaluateRequest, FitOutcome, FitRequest } from "../server/client-proxy.js";
import { RoundLoop } from "../server/round-loop.js";
import type { RoundRecord } from "../server/round-record.js";

/**
 * Federated evaluation on the virtual clock, with the real SimulatedTiming: each evaluator's answer
 * takes its download, forward passes and reply in simulated time, within the round's deadline, and
 * devices that are unavailable or leave during it fail with their code. The fake clients answer
 * in the reverse of simulated order on the wall clock, so a result that followed the wall clock
 * would come out in the wrong order.
 */
class EvaluatingClient implements ClientProxy {
  evaluations = 0;

  constructor(
    readonly id: string,
    /** Examples it evaluates; its accuracy is derived from the count so the mean can be checked. */
    private readonly examples: number,
    /** Event-loop turns before its real evaluation answers. */
    private readonly turns: number,
  ) {}

  async fit(request: FitRequest): Promise<FitOutcome> {
    const n = request.weights.values.length;
    return {
      ok: true,
      clientId: this.id,
      numExamples: 100,
      delta: new Float32Array(n).fill(0.1),
      bytes: { sent: n * 4, received: n * 4 },
    };
  }

  async evaluate(_request: EvaluateRequest): Promise<EvaluateReply> {
    this.evaluations++;
    for (let i = 0; i < this.turns; i++) await Promise.resolve();
    return { numExamples: this.examples, loss: 1, accuracy: accuracyOf(this.examples) };
  }
}

const accuracyOf = (examples: number) => examples / 2000;

// One device for all: speed 1, 100 ms latency, fast links; 0.01 s per example and epoch.
const fleet = new Fleet([{ name: "one", speed: 1, downlinkMbps: 8, uplinkMbps: 4, latencyMs: 100 }], 1);
const ids = ["a", "b", "c", "d", "e", "f"];
const clients = new Map<string, SimClient>(ids.map((id, index) => [id, { index, examples: 100 }]));
/** e leaves mid-evaluation (after its fit), f before the evaluation (during its fit). */
const leavesAt: Record<number, number> = { 4: 1.5, 5: 1.0 };
const availability: AvailabilitySource = {
  isAvailable: (index, at) => !(leavesAt[index] !== undefined && at >= leavesAt[index]),
  interruptedAt: (index, from, to) => {
    const t = leavesAt[index];
    return t === undefined || to <= t ? undefined : Math.max(from, t);
  },
};

/** Evaluations of 600, 300, 1500, 150, 300, 300 examples: 2, 1, 5, 0.5, 1, 1 simulated seconds of compute. */
function evaluators(): EvaluatingClient[] {
  const examples = [600, 300, 1500, 150, 300, 300];
  // Wall-clock order c, a, b, d: the reverse of simulated order.
  const turns = [3, 6, 1, 13, 6, 6];
  return ids.map((id, i) => new EvaluatingClient(id, examples[i], turns[i]));
}

async function run(members: EvaluatingClient[], rounds = 2) {
  const timing = new SimulatedTiming({ fleet, clients, seed: 3, secondsPerExample: 0.01, availability });
  const aggregated: string[][] = [];
  const strategy = new FedAvg({ fractionFit: 1 });
  strategy.aggregateEvaluate = (_round: number, results: readonly MetricsResult[]) => {
    aggregated.push(results.map((r) => r.clientId));
    return {};
  };
  const model: FlatWeights = { specs: [{ name: "w", shape: [4] }], values: new Float32Array(4) };
  const loop = new RoundLoop({
    strategy,
    directory: { connected: () => members, waitForClients: async () => true },
    model,
    trainable: new Set(["w"]),
    evaluate: async () => ({ loss: 0, accuracy: 0 }),
    rounds,
    deadlineMs: 60_000,
    minAvailableClients: 1,
    seed: 1,
    federatedEvaluation: { fraction: 1, everyRounds: 1, timeoutMs: 60_000 },
    virtualClock: { timing, deadlineSeconds: 4 },
  });
  return { records: await loop.run(), aggregated };
}

describe("federated evaluation on the virtual clock", () => {
  it("an exchange takes download + forward passes + upload, from the real sizes", () => {
    const timing = new SimulatedTiming({ fleet, clients, seed: 3, secondsPerExample: 0.01, availability });
    // b: download 0.1 + 8e6/8e6; 300 examples · 0.01 · EVALUATION_COST; upload 0.1 + 16000/4e6.
    const answer = timing.exchange({
      clientId: "b",
      sentAt: 60,
      bytesDown: 1_000_000,
      bytesUp: 2000,
      evaluatedExamples: 300,
    });
    expect(answer).toEqual({ arrived: true, at: expect.closeTo(60 + 1.1 + 3 * EVALUATION_COST + 0.104, 9) });
    // A device held since before it left fails when it left, however late the request went out.
    const held = { clientId: "e", sentAt: 60, bytesDown: 10, bytesUp: 10, evaluatedExamples: 0 };
    expect(timing.exchange({ ...held, engagedSince: 1 })).toEqual({
      arrived: false,
      at: 1.5,
      reason: "device became unavailable",
    });
  });

  it("takes answers in simulated order; the deadline cuts the slow evaluator; leavers fail with their code", async () => {
    const members = evaluators();
    const { records, aggregated } = await run(members);
    const [first] = records;
    const fed = first.federated;
    if (!fed) throw new Error("no federated evaluation");
    // The strategy saw the answers in simulated order: d (0.5 s of compute), b (1 s), a (2 s);
    // on the wall clock they came in the reverse order.
    expect(aggregated[0]).toEqual(["d", "b", "a"]);
    expect(fed.clients).toBe(3);
    expect(fed.examples).toBe(1050);
    expect(fed.accuracy).toBeCloseTo(
      (600 * accuracyOf(600) + 300 * accuracyOf(300) + 150 * accuracyOf(150)) / 1050,
      9,
    );
    // f left during its fit, so it was not asked (unavailable at the request); e left during its
    // evaluation; c needs 5 s of compute against a 4 s deadline. In simulated order.
    expect(fed.failureDetails).toEqual([
      { clientId: "f", reason: "disconnect", code: ErrorCode.CLIENT_DISCONNECTED },
      { clientId: "e", reason: "disconnect", code: ErrorCode.CLIENT_DISCONNECTED },
      { clientId: "c", reason: "timeout", code: ErrorCode.CLIENT_TIMEOUT },
    ]);
    expect(members[5].evaluations).toBe(0);
    // The evaluation waited for its deadline, and the round's simulated time includes it.
    expect(fed.simulatedSeconds).toBe(4);
    const fitsEnd = Math.max(...first.clients.map((c) => c.simulatedArrivedAt ?? Number.NaN));
    expect(first.simulatedSeconds).toBeCloseTo(fitsEnd + 4, 9);
    expect(records[1].simulatedStart).toBeCloseTo(fitsEnd + 4, 9);
    // e and f are gone for good: the second round neither trains nor evaluates them.
    expect(records[1].sampled).toBe(4);
  });

  it("the same seed gives the same records", async () => {
    const wallFree = (records: RoundRecord[]) =>
      records.map(({ seconds: _s, startedAt: _t, clients: timings, ...rest }) => ({
        ...rest,
        clients: timings.map(({ startSeconds: _a, seconds: _b, ...timing }) => timing),
      }));
    const once = await run(evaluators());
    const twice = await run(evaluators());
    expect(wallFree(twice.records)).toEqual(wallFree(once.records));
    expect(twice.aggregated).toEqual(once.aggregated);
  });
});
