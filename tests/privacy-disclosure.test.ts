import { describe, expect, it } from "vitest";
import { generateIdentity } from "../common/crypto/identity.js";
import { l2Norm } from "../common/dp/clip.js";
import { ErrorCode } from "../common/errors.js";
import { getFlatWeights } from "../common/models/tf-weights.js";
import type { FitInstructions } from "../common/protocol.js";
import { float32ToBytes, totalSize } from "../common/weights.js";
import type { FitOutcome, FitSuccess } from "../server/client-proxy.js";
import { type DpSettings, PrivacyPlugin, type PrivacyPluginOptions } from "../server/plugins/privacy.js";
import type { SecAggSettings } from "../server/secagg-round.js";
import { useCleanups } from "./helpers/cleanups.js";
import { smallMnist, startClients, startTestCoordinator } from "./helpers/federation.js";
import { craftResult, type RogueFederation, startRogueFederation, successesOf } from "./helpers/rogue.js";
import { recordIncoming } from "./helpers/security.js";

/**
 * What the coordinator receives in each privacy mode, read off its own sockets: the raw
 * fitResult payloads as they arrive, and what the proxy hands the round loop after opening them.
 * docs/PRIVACY.md's "What the server sees" table is the contract checked here.
 */

const cleanups = useCleanups();

const dp = (mode: DpSettings["mode"], extra: Partial<DpSettings> = {}): DpSettings => ({
  mode,
  noiseMultiplier: 0.5,
  clipNorm: 1,
  delta: 1e-5,
  conversion: "classic",
  ...extra,
});
const secagg: Omit<SecAggSettings, "weighted"> = {
  graph: "complete",
  clipRange: 1,
  maxWeight: 60,
  stageTimeoutMs: 30_000,
  seed: 0,
};

interface Mode {
  name: string;
  plugin?: Omit<PrivacyPluginOptions, "log" | "expectedClientsPerRound">;
  identities?: boolean;
  /** The one field the raw fitResult carries beside round and nonce, and that field's keys. */
  carrier: "update" | "envelope" | "secagg";
  keys?: string[];
  /** Whether the example count and training metrics reach the coordinator. */
  reports: boolean;
}

const MODES: Mode[] = [
  { name: "plain", carrier: "update", keys: ["delta", "metrics", "numExamples"], reports: true },
  { name: "envelope", plugin: { envelope: true }, identities: true, carrier: "envelope", reports: true },
  {
    name: "central DP",
    plugin: { envelope: false, dp: dp("central") },
    carrier: "update",
    keys: ["delta"],
    reports: false,
  },
  {
    name: "central DP, adaptive clipping",
    plugin: {
      envelope: false,
      dp: dp("central", { adaptive: { targetQuantile: 0.5, clipLearningRate: 0.2, clippedCountStddev: 1 } }),
    },
    carrier: "update",
    keys: ["clippedBit", "delta"],
    reports: false,
  },
  {
    name: "local DP",
    plugin: { envelope: false, dp: dp("local") },
    carrier: "update",
    keys: ["delta"],
    reports: false,
  },
  {
    name: "DP inside envelopes",
    plugin: { envelope: true, dp: dp("central") },
    identities: true,
    carrier: "envelope",
    reports: false,
  },
  {
    name: "SecAgg",
    plugin: { envelope: false, secagg },
    carrier: "secagg",
    keys: ["masked"],
    reports: false,
  },
  {
    name: "SecAgg with distributed DP",
    plugin: { envelope: false, secagg, dp: dp("distributed") },
    carrier: "secagg",
    keys: ["masked"],
    reports: false,
  },
];

describe("what the coordinator receives in each privacy mode (real sockets)", () => {
  it.each(MODES)("$name", async (mode) => {
    const { parts, test } = await smallMnist(3, 60, 100);
    const outcomes: FitOutcome[] = [];
    const coordinator = await startTestCoordinator(test, {
      rounds: 1,
      minAvailableClients: 3,
      onClientOutcome: (_round, outcome) => outcomes.push(outcome),
      ...(mode.plugin
        ? { plugin: ({ log }) => new PrivacyPlugin({ ...mode.plugin!, expectedClientsPerRound: 3, log }) }
        : {}),
    });
    cleanups.push(() => coordinator.close());
    const received = recordIncoming(coordinator.sockets, "fitResult");
    const clients = startClients(coordinator.url, parts, () =>
      mode.identities ? { identity: generateIdentity() } : {},
    );
    cleanups.push(() => {
      for (const c of clients) c.close();
    });
    await Promise.all(clients.map((c) => c.ready));
    const result = await coordinator.run();

    const [record] = result.rounds;
    expect(record.participants).toBe(3);
    expect(record.kept).toBeUndefined();
    expect(received).toHaveLength(3);
    for (const { payload } of received) {
      expect(Object.keys(payload).sort()).toEqual(["nonce", "round", mode.carrier].sort());
      const carried = payload[mode.carrier] as Record<string, unknown>;
      if (mode.keys) expect(Object.keys(carried).sort()).toEqual(mode.keys);
    }
    // What the coordinator holds once the update is opened (envelopes) or accepted.
    const successes = successesOf(outcomes);
    expect(successes).toHaveLength(3);
    for (const s of successes) {
      expect(s.numExamples !== undefined).toBe(mode.reports);
      expect(s.metrics !== undefined).toBe(mode.reports);
    }
    expect(record.trainLoss !== undefined).toBe(mode.reports);
    expect(record.clients.map((c) => c.trainSeconds !== undefined)).toEqual([
      mode.reports,
      mode.reports,
      mode.reports,
    ]);
  });
});

/** A fitResult with a bare update: the delta and nothing about the data behind it. */
function bareResult(ins: FitInstructions, values: Float32Array) {
  return {
    round: ins.round,
    nonce: ins.nonce,
    update: { delta: { specs: ins.weights.specs, data: float32ToBytes(values) } },
  };
}

async function rogueFederation(plugin?: PrivacyPluginOptions["dp"]): Promise<RogueFederation> {
  const fed = await startRogueFederation({
    ...(plugin
      ? {
          coordinator: {
            plugin: ({ log }) =>
              new PrivacyPlugin({ envelope: false, dp: plugin, expectedClientsPerRound: 3, log }),
          },
        }
      : {}),
  });
  cleanups.push(() => fed.close());
  return fed;
}

describe("a client that reports what its round's mode forbids, or omits what it needs", () => {
  it("under DP, an update carrying metrics and an example count is refused with PRIVACY_VIOLATION", async () => {
    const fed = await rogueFederation(dp("central"));
    const rogue = await fed.admitRogue();
    const run = fed.coordinator.run();
    const ins = await rogue.nextFit();
    const ack = await rogue.sendResult(craftResult(ins));
    expect(ack).toMatchObject({ ok: false, code: ErrorCode.PRIVACY_VIOLATION });
    const result = await run;
    expect(result.rounds[0].participants).toBe(2);
    expect(result.rounds[0].failureDetails).toEqual([
      { clientId: rogue.clientId, reason: "rejected", code: ErrorCode.PRIVACY_VIOLATION },
    ]);
    expect(result.rounds[0].trainLoss).toBeUndefined();
  });

  it("without DP or SecAgg, an update without its example count is refused with BAD_PAYLOAD", async () => {
    const fed = await rogueFederation();
    const rogue = await fed.admitRogue();
    const run = fed.coordinator.run();
    const ins = await rogue.nextFit();
    const ack = await rogue.sendResult(bareResult(ins, new Float32Array(totalSize(ins.weights.specs))));
    expect(ack).toMatchObject({ ok: false, code: ErrorCode.BAD_PAYLOAD, message: /numExamples and metrics/ });
    expect((await run).rounds[0].participants).toBe(2);
  });
});

describe("central DP clips on the coordinator", () => {
  it("a hostile client's unclipped update moves the sum by at most S; the honest clients' round completes", async () => {
    const S = 1;
    // No noise, so the aggregate can be checked exactly; clipping does not depend on it.
    const fed = await rogueFederation(dp("central", { noiseMultiplier: 0, clipNorm: S }));
    const rogue = await fed.admitRogue();
    const run = fed.coordinator.run();
    const ins = await rogue.nextFit();
    const huge = new Float32Array(totalSize(ins.weights.specs)).fill(1000);
    expect(await rogue.sendResult(bareResult(ins, huge))).toEqual({ ok: true });
    const result = await run;
    expect(result.rounds[0].participants).toBe(3);
    expect(result.rounds[0].kept).toBeUndefined();
    expect(fed.logs.some((l) => /clipped 1 update\(s\) that arrived with a norm above S=1/.test(l))).toBe(
      true,
    );

    // global = initial + Σ clip(Δ) / m with m = 3 sampled: take the honest updates out of the step.
    const final = getFlatWeights(fed.coordinator.model).values;
    const honest = successesOf(fed.outcomes).filter((s: FitSuccess) => s.clientId !== rogue.clientId);
    expect(honest).toHaveLength(2);
    const rogueShare = new Float32Array(final.length);
    for (let i = 0; i < final.length; i++) {
      rogueShare[i] = 3 * (final[i] - fed.initial.values[i]) - honest[0].delta[i] - honest[1].delta[i];
    }
    // Clipped to S, not dropped: its direction survives with norm S.
    expect(l2Norm(rogueShare)).toBeLessThanOrEqual(S * 1.001);
    expect(l2Norm(rogueShare)).toBeGreaterThan(S * 0.999);
    for (const s of honest) expect(l2Norm(s.delta)).toBeLessThanOrEqual(S);
  });
});
