import { describe, expect, it } from "vitest";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { edgeRequirements } from "../server/edges/edge-privacy.js";
import { type DpSettings, PrivacyPlugin, type PrivacyPluginOptions } from "../server/plugins/privacy.js";
import { expectError } from "./helpers/expect-error.js";
import { smallMnist, startTestCoordinator } from "./helpers/federation.js";

/** What each privacy setting asks of edges (RoundPlugin.overEdges), and what is refused. */

const dp = (mode: DpSettings["mode"]): DpSettings => ({
  mode,
  noiseMultiplier: 1,
  clipNorm: 1,
  delta: 1e-5,
  conversion: "classic",
});
const plugin = (options: Omit<PrivacyPluginOptions, "log" | "expectedClientsPerRound">) =>
  new PrivacyPlugin({ ...options, expectedClientsPerRound: 4, log: () => {} });
const secagg = { graph: "complete" as const, clipRange: 1, maxWeight: 60, stageTimeoutMs: 1000, seed: 0 };

describe("privacy settings over edges", () => {
  it("central DP clips at the edges and weighs every update 1; local and distributed DP do not clip", () => {
    expect(edgeRequirements(plugin({ envelope: false, dp: dp("central") }))).toEqual({
      sealed: false,
      clipAtEdge: true,
      uniformWeights: true,
    });
    for (const mode of ["local", "distributed"] as const) {
      expect(edgeRequirements(plugin({ envelope: false, dp: dp(mode) }))).toMatchObject({
        clipAtEdge: false,
        uniformWeights: true,
      });
    }
  });

  it("envelopes make the edges relay sealed updates, with or without DP", () => {
    expect(edgeRequirements(plugin({ envelope: true }))).toMatchObject({
      sealed: true,
      uniformWeights: false,
    });
    expect(edgeRequirements(plugin({ envelope: true, dp: dp("central") }))).toMatchObject({
      sealed: true,
      clipAtEdge: true,
    });
  });

  it("under secure aggregation the edges hold masked inputs: nothing to clip there, even with central DP", () => {
    expect(edgeRequirements(plugin({ envelope: false, secagg, dp: dp("central") }))).toEqual({
      sealed: false,
      clipAtEdge: false,
      uniformWeights: true,
    });
  });

  it("refuses a plugin that does not say how it runs over edges, before the coordinator reaches Redis", async () => {
    expectError(() => edgeRequirements({}), ErrorCode.INCOMPATIBLE_OPTIONS, "RoundPlugin.overEdges");
    const { test } = await smallMnist(1, 10, 20);
    const started = startTestCoordinator(test, {
      // Nothing listens here: the refusal must come first.
      scaleOut: { redisUrl: "redis://127.0.0.1:1" },
      plugin: () => ({ collect: (_round, _successes, _failures, previous) => previous ?? null }),
    });
    const err = await started.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FedsimError);
    expect((err as FedsimError).code).toBe(ErrorCode.INCOMPATIBLE_OPTIONS);
    expect((err as FedsimError).message).toContain("RoundPlugin.overEdges");
  });
});
