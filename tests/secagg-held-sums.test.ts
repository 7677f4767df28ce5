import { describe, expect, it } from "vitest";
import { ClientSecAgg } from "../client/secagg-session.js";
import { bytesToVector } from "../common/crypto/secagg/messages.js";
import { encodeWeightedVector } from "../common/crypto/secagg/weighted-vector.js";
import { describeError, ErrorCode, FedsimError } from "../common/errors.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import { maskedSum } from "../common/strategy/partial-sum.js";
import type { FlatWeights } from "../common/weights.js";
import { fromWire, toWire } from "../common/wire-json.js";
import type {
  ClientProxy,
  FitOutcome,
  FitRequest,
  MaskedInputHolder,
  SecAggStage,
} from "../server/client-proxy.js";
import { SecAggPlugin } from "../server/plugins/secagg-plugin.js";
import { RoundLoop } from "../server/round-loop.js";

/**
 * SecAggRound with masked inputs held elsewhere (as an edge holds them), in memory: real SecAgg
 * client sessions behind fake proxies, each held client's masked vector kept by its holder, which
 * hands over one sum mod 2^32. A holder that cannot answer loses its clients' inputs, which the
 * round then unmasks around as dropouts.
 */
class Holder implements MaskedInputHolder {
  readonly kept = new Map<string, Uint32Array>();
  readonly asked: string[][] = [];

  constructor(
    readonly id: string,
    private readonly lost = false,
  ) {}

  async maskedSum(_round: number, clientIds: readonly string[]): Promise<Uint32Array> {
    this.asked.push([...clientIds]);
    if (this.lost) throw new FedsimError(ErrorCode.EDGE_LOST, `edge ${this.id} is not connected`);
    return maskedSum(clientIds.map((id) => this.kept.get(id)!));
  }
}

class Client implements ClientProxy {
  private readonly session = new ClientSecAgg();

  constructor(
    readonly id: string,
    /** Every coordinate of its update. */
    private readonly value: number,
    readonly maskedHolder?: Holder,
  ) {}

  async secagg(stage: SecAggStage, payload: unknown): Promise<unknown> {
    try {
      return toWire({ ok: true, message: await this.session.handle(this.id, stage, fromWire(payload)) });
    } catch (err) {
      return { ok: false, code: ErrorCode.SECAGG_PROTOCOL, message: describeError(err) };
    }
  }

  async fit(request: FitRequest): Promise<FitOutcome> {
    const delta = new Float32Array(request.weights.values.length).fill(this.value);
    const masked = this.session.mask(request.round, encodeWeightedVector(delta, 1, request.secagg!));
    if (!this.maskedHolder) return { ok: true, clientId: this.id, delta: new Float32Array(0), masked };
    this.maskedHolder.kept.set(this.id, bytesToVector(masked.masked));
    return { ok: true, clientId: this.id, delta: new Float32Array(0) };
  }
}

/** Five clients on the complete graph, t = 3 of each one's 5 share holders: two may drop out. */
async function run(members: Client[]) {
  const model: FlatWeights = { specs: [{ name: "w", shape: [5] }], values: new Float32Array(5) };
  const logs: string[] = [];
  const loop = new RoundLoop({
    strategy: new FedAvg({ fractionFit: 1, minFitClients: 2 }),
    directory: { connected: () => members, waitForClients: async () => true },
    model,
    trainable: new Set(["w"]),
    evaluate: async () => ({ loss: 0, accuracy: 0 }),
    rounds: 1,
    deadlineMs: 60_000,
    minAvailableClients: members.length,
    seed: 1,
    plugin: new SecAggPlugin(
      {
        graph: "complete",
        threshold: 3,
        clipRange: 1,
        weighted: false,
        maxWeight: 1,
        stageTimeoutMs: 60_000,
        seed: 1,
      },
      (line) => logs.push(line),
    ),
  });
  const [record] = await loop.run();
  return { record, model, logs };
}

describe("secure aggregation with masked inputs held at edges", () => {
  it("one masked sum per holder and the coordinator's own clients' vectors unmask to the mean", async () => {
    const edge0 = new Holder("edge-0");
    const edge1 = new Holder("edge-1");
    const { record, model } = await run([
      new Client("a", 0.1, edge0),
      new Client("b", 0.2, edge0),
      new Client("c", 0.3, edge1),
      new Client("d", 0.4, edge1),
      new Client("e", 0.5),
    ]);
    expect(record.participants).toBe(5);
    expect(edge0.asked.map((ids) => ids.sort())).toEqual([["a", "b"]]);
    expect(edge1.asked.map((ids) => ids.sort())).toEqual([["c", "d"]]);
    for (const v of model.values) expect(v).toBeCloseTo(0.3, 4);
  });

  it("a holder that cannot give its sum: its clients unmask as dropouts, the others' mean stands", async () => {
    const edge0 = new Holder("edge-0");
    const gone = new Holder("edge-1", true);
    const { record, model, logs } = await run([
      new Client("a", 0.1, edge0),
      new Client("b", 0.2, edge0),
      new Client("c", 0.3, gone),
      new Client("d", 0.4, gone),
      new Client("e", 0.6),
    ]);
    expect(record.kept).toBeUndefined();
    expect(logs.some((l) => l.includes("masked sum of 2 inputs from edge-1 refused: EDGE_LOST"))).toBe(true);
    // (0.1 + 0.2 + 0.6) / 3, not the five's mean 0.32: c's and d's inputs are not in the sum, and
    // their pairwise masks came out through a, b and e's shares.
    for (const v of model.values) expect(v).toBeCloseTo(0.3, 4);
  });
});
