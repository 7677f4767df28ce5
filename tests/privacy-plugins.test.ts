import { describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import type { AggregationInput } from "../common/strategy/strategy.js";
import type { ClientProxy, FitFailure, FitSuccess } from "../server/client-proxy.js";
import { ComposedPlugin } from "../server/plugins/compose.js";
import { DpPlugin, type DpSettings } from "../server/plugins/dp-plugin.js";
import { EnvelopePlugin } from "../server/plugins/envelope-plugin.js";
import { PrivacyPlugin } from "../server/plugins/privacy.js";
import type { RoundPlugin } from "../server/round-plugin.js";
import { expectError } from "./helpers/expect-error.js";

const silent = () => {};
const zeroNoise = { normal: () => 0 };
const central: DpSettings = {
  mode: "central",
  noiseMultiplier: 1,
  clipNorm: 1,
  delta: 1e-5,
  conversion: "classic",
};
const proxies = (n: number): ClientProxy[] =>
  Array.from({ length: n }, (_, i) => ({ id: `c${i}`, fit: () => Promise.reject(new Error("not used")) }));
const success = (clientId: string, delta: number[], extra: Partial<FitSuccess> = {}): FitSuccess => ({
  ok: true,
  clientId,
  delta: Float32Array.from(delta),
  ...extra,
});

/** Stands in for SecAgg: hands on a fixed sum, as unmasking would. */
const sumSource = (sum: number[], totalWeight: number): RoundPlugin => ({
  collect: (): AggregationInput => ({
    kind: "sum",
    weightedDeltaSum: Float32Array.from(sum),
    totalWeight,
    count: 2,
    clientIds: ["c0", "c1"],
  }),
});

describe("composed round plugins", () => {
  it("DP after a sum-making plugin keeps that sum and fixes the denominator to the sampled count", async () => {
    const dp = new DpPlugin({ dp: central, expectedClientsPerRound: 4, noise: zeroNoise, log: silent });
    const plugin = new ComposedPlugin({ secagg: sumSource([3, -1], 17), dp });
    await plugin.prepareRound(1, proxies(4), 10);
    const input = await plugin.collect(1, [success("c0", []), success("c1", [])], []);
    expect(input).toMatchObject({ kind: "sum", totalWeight: 4, count: 2, clientIds: ["c0", "c1"] });
    expect(Array.from((input as { weightedDeltaSum: Float32Array }).weightedDeltaSum)).toEqual([3, -1]);
  });

  it("central DP alone clips each update on the server before summing", async () => {
    const dp = new DpPlugin({ dp: central, expectedClientsPerRound: 2, noise: zeroNoise, log: silent });
    const plugin = new ComposedPlugin({ dp });
    await plugin.prepareRound(1, proxies(2), 2);
    const input = await plugin.collect(1, [success("c0", [3, 4]), success("c1", [0, 0.5])], []);
    const sum = (input as { weightedDeltaSum: Float32Array }).weightedDeltaSum;
    expect(sum[0]).toBeCloseTo(0.6, 6);
    expect(sum[1]).toBeCloseTo(0.8 + 0.5, 6);
    expect(input).toMatchObject({ kind: "sum", totalWeight: 2 });
  });

  it("with envelopes only, the strategy sees each update with its example count", async () => {
    const plugin = new ComposedPlugin({ envelope: new EnvelopePlugin() });
    const prep = await plugin.prepareRound(1, proxies(1), 1);
    expect(prep.envelope?.publicKey).toBeInstanceOf(Uint8Array);
    const metrics = { loss: 0.5, accuracy: 0.75, steps: 1, epochsCompleted: 1, seconds: 0.1 };
    const input = await plugin.collect(1, [success("c0", [1, 2], { numExamples: 7, metrics })], []);
    expect(input).toMatchObject({ kind: "individual", updates: [{ clientId: "c0", numExamples: 7 }] });
    plugin.endRound(1);
  });

  it("merges the parts' preparations and their protections", async () => {
    const failed: FitFailure = { ok: false, clientId: "c1", reason: "error", code: "X", message: "m" };
    const excluding = (f: FitFailure): RoundPlugin => ({ prepareRound: () => ({ excluded: [f] }) });
    const plugin = new ComposedPlugin({
      a: excluding(failed),
      b: excluding({ ...failed, clientId: "c2" }),
      dp: new DpPlugin({ dp: central, expectedClientsPerRound: 3, log: silent }),
    });
    const prep = await plugin.prepareRound(1, proxies(3), 3);
    expect(prep.excluded?.map((f) => f.clientId)).toEqual(["c1", "c2"]);
    expect(prep.dp).toEqual({ clipNorm: 1, noiseStd: 0, reportClippedBit: false });
    expect(plugin.protection).toEqual({ secretSampling: true, hidesClientReports: true });
    expect(new ComposedPlugin({ envelope: new EnvelopePlugin() }).protection).toEqual({
      secretSampling: false,
      hidesClientReports: false,
    });
  });
});

describe("privacy plugin checkpoints", () => {
  const options = { envelope: false, dp: central, expectedClientsPerRound: 2, noise: zeroNoise, log: silent };

  async function spendRounds(plugin: PrivacyPlugin, rounds: number): Promise<void> {
    for (let round = 1; round <= rounds; round++) {
      await plugin.prepareRound(round, proxies(2), 8);
      plugin.afterAggregate(round, [], false);
    }
  }

  it("a restored plugin reports the same ε, from its own state or from a checkpoint written before the split", async () => {
    const original = new PrivacyPlugin(options);
    await spendRounds(original, 3);
    const state = JSON.parse(JSON.stringify(original.state())) as { dp: unknown };
    const epsilon = original.afterAggregate(4, [], true).epsilon;
    expect(epsilon).toBeGreaterThan(0);

    const restored = new PrivacyPlugin(options);
    restored.restore(state);
    expect(restored.afterAggregate(4, [], true).epsilon).toBe(epsilon);

    const fromLegacy = new PrivacyPlugin(options);
    fromLegacy.restore(state.dp);
    expect(fromLegacy.afterAggregate(4, [], true).epsilon).toBe(epsilon);
  });

  it("refuses to resume DP from a checkpoint without a ledger", () => {
    expectError(() => new PrivacyPlugin(options).restore(null), ErrorCode.CHECKPOINT, "privacy ledger");
    expectError(() => new PrivacyPlugin(options).restore({ dp: {} }), ErrorCode.CHECKPOINT, "privacy ledger");
  });

  it("refuses envelopes with secure aggregation, naming both", () => {
    const secagg = { graph: "complete" as const, clipRange: 1, maxWeight: 1, stageTimeoutMs: 1000, seed: 1 };
    expectError(
      () => new PrivacyPlugin({ ...options, envelope: true, secagg }),
      ErrorCode.INCOMPATIBLE_OPTIONS,
      "envelope",
      "secagg",
    );
  });
});
