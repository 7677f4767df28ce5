import { describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import { createRng } from "../common/rng.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import type { FlatWeights } from "../common/weights.js";
import type { ClientProxy, FitOutcome, FitRequest } from "../server/client-proxy.js";
import { RoundLoop } from "../server/round-loop.js";
import type { RoundLoopOptions } from "../server/round-options.js";
import type { RoundPlugin } from "../server/round-plugin.js";
import { expectError } from "./helpers/expect-error.js";

/** A client that answers at once with a protected-round success: a delta and no report. */
function quietClient(id: string): ClientProxy {
  return {
    id,
    async fit(request: FitRequest): Promise<FitOutcome> {
      return { ok: true, clientId: id, delta: new Float32Array(request.weights.values.length).fill(0.01) };
    },
  };
}

const CLIENTS = Array.from({ length: 20 }, (_, i) => quietClient(`c${String(i).padStart(2, "0")}`));

function loop(
  plugin: RoundPlugin | undefined,
  logs: string[] = [],
  extra: Partial<RoundLoopOptions> = {},
): RoundLoop {
  const model: FlatWeights = { specs: [{ name: "w", shape: [3] }], values: new Float32Array(3) };
  return new RoundLoop({
    // Sums only: the in-memory stand-in for the privacy plugin's collect under DP.
    strategy: new FedAvg({ clientsPerRound: 5 }),
    directory: { connected: () => CLIENTS, waitForClients: async () => true },
    model,
    trainable: new Set(["w"]),
    evaluate: async () => ({ loss: 0, accuracy: 0 }),
    rounds: 6,
    deadlineMs: 10_000,
    minAvailableClients: CLIENTS.length,
    seed: 42,
    ...(plugin ? { plugin } : {}),
    log: (line) => logs.push(line),
    ...extra,
  });
}

const dpLike: RoundPlugin = {
  protection: { secretSampling: true, hidesClientReports: true },
  collect: (_round, successes) => ({
    kind: "sum",
    weightedDeltaSum: new Float32Array(3),
    totalWeight: Math.max(1, successes.length),
    count: successes.length,
    clientIds: successes.map((s) => s.clientId),
  }),
};

async function sampledIds(l: RoundLoop): Promise<string[][]> {
  const records = await l.run();
  return records.map((r) => r.clients.map((c) => c.clientId).sort());
}

describe("client sampling under DP", () => {
  it("is seeded without DP: the same seed picks the same clients every run", async () => {
    const a = loop(undefined);
    expect(a.samplingReproducible).toBe(true);
    expect(await sampledIds(a)).toEqual(await sampledIds(loop(undefined)));
  });

  it("comes from a CSPRNG under DP: the same seed does not predict who trains", async () => {
    const logs: string[] = [];
    const first = loop(dpLike, logs);
    expect(first.samplingReproducible).toBe(false);
    const a = await sampledIds(first);
    const b = await sampledIds(loop(dpLike));
    const seeded = await sampledIds(loop(undefined));
    // Six rounds of 5 of 20: two equal sequences would have probability (1/15504)^6.
    expect(a).not.toEqual(b);
    expect(a).not.toEqual(seeded);
    for (const ids of a) expect(new Set(ids).size).toBe(5);
    expect(logs.some((l) => /CSPRNG under DP.*not reproducible/.test(l))).toBe(true);
    // The seeded stream a checkpoint saves was not spent on sampling.
    expect(first.rngState()).toEqual(createRng(42).state());
  });

  it("records no training loss or training time when clients report none", async () => {
    const [record] = await loop(dpLike).run();
    expect(record.participants).toBe(5);
    expect(record.trainLoss).toBeUndefined();
    expect(record.clients.every((c) => c.trainSeconds === undefined && c.outcome === "ok")).toBe(true);
  });

  it("refuses federated evaluation beside a plugin that hides client reports", () => {
    expectError(
      () => loop(dpLike, [], { federatedEvaluation: { fraction: 0.5, everyRounds: 1, timeoutMs: 1000 } }),
      ErrorCode.INCOMPATIBLE_OPTIONS,
      "federated evaluation",
    );
  });
});
