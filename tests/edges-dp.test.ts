import { describe, expect, it } from "vitest";
import { l2Norm } from "../common/dp/clip.js";
import { seededNormalSource } from "../common/dp/noise.js";
import { ErrorCode } from "../common/errors.js";
import type { FitInstructions } from "../common/protocol.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import { bytesToFloat32, float32ToBytes, totalSize } from "../common/weights.js";
import type { CoordinatorOptions } from "../server/coordinator.js";
import { type DpSettings, PrivacyPlugin } from "../server/plugins/privacy.js";
import { useCleanups } from "./helpers/cleanups.js";
import { type LinkMessage, payloadsOf, recordLinks } from "./helpers/edge-link.js";
import { type Federation, maxAbsDiff, startFederation } from "./helpers/edges.js";
import { useRedis } from "./helpers/redis.js";
import { craftResult, RogueClient } from "./helpers/rogue.js";
import { recordIncoming } from "./helpers/security.js";

/**
 * Differential privacy over edges (docs/SCALE-OUT.md, "Privacy over edges"). Central: each edge
 * clips each update before its partial sum and the coordinator noises the total once. Local and
 * distributed: the clients noise their own updates and the edges sum them as they are. In every
 * mode no example count or training metric crosses a link (common/disclosure.ts).
 */

const fitConfig = { epochs: 1, batchSize: 16, learningRate: 0.1 };
const strategy = () => new FedAvg({ fractionFit: 1, minFitClients: 1, fitConfig });

const redis = useRedis();
const cleanups = useCleanups();

const dpSettings = (mode: DpSettings["mode"], extra: Partial<DpSettings> = {}): DpSettings => ({
  mode,
  noiseMultiplier: 0.5,
  clipNorm: 1,
  delta: 1e-5,
  conversion: "classic",
  ...extra,
});

/** The DP plugin with the coordinator's noise drawn from a seed, so two runs can be compared. */
function dpPlugin(dp: DpSettings, clients: number): CoordinatorOptions["plugin"] {
  return ({ log }) =>
    new PrivacyPlugin({
      envelope: false,
      dp,
      expectedClientsPerRound: clients,
      noise: seededNormalSource(11),
      log,
    });
}

interface DpRun {
  fed: Federation;
  link: LinkMessage[];
  logs: string[];
}

async function dpFederation(dp: DpSettings, withEdges: boolean, rounds = 2, rogues = 0): Promise<DpRun> {
  const logs: string[] = [];
  let link: LinkMessage[] = [];
  const fed = await startFederation({
    strategy,
    rounds,
    ...(withEdges ? { redis } : {}),
    // The rogues a test connects are waited for too.
    coordinator: { minAvailableClients: 4 + rogues, plugin: dpPlugin(dp, 4 + rogues) },
    // Local and distributed noise is the clients' own: seeded, so both runs draw the same.
    client: (i) => ({ noise: seededNormalSource(100 + i) }),
    beforeClients: async (coordinator) => {
      link = recordLinks(coordinator);
    },
    logs,
  });
  cleanups.push(() => fed.close());
  return { fed, link, logs };
}

/** One coordinator and two edges, same settings: the final weights and the records of each. */
async function compareRuns(dp: DpSettings) {
  const alone = await dpFederation(dp, false);
  const aloneResult = await alone.fed.result;
  const aloneWeights = alone.fed.coordinator.loop.globalWeights.values.slice();
  const edged = await dpFederation(dp, true);
  const edgedResult = await edged.fed.result;
  return { alone: aloneResult, aloneWeights, edged, edgedResult };
}

/** No example count and no training metric crossed a link, in `accepted` ok outcomes and any failures. */
function expectNoReportsOnLinks(link: readonly LinkMessage[], accepted: number): void {
  const sent = payloadsOf(link, "edgeOutcome");
  expect(sent.filter((o) => o.ok === true)).toHaveLength(accepted);
  for (const outcome of sent) {
    expect(outcome.numExamples).toBeUndefined();
    expect(outcome.metrics).toBeUndefined();
    expect(outcome.delta).toBeUndefined();
  }
}

describe("central DP over edges", () => {
  it("gives one coordinator's model, ε and adaptive clip norms; the links carry no reports", async () => {
    const dp = dpSettings("central", {
      adaptive: { targetQuantile: 0.5, clipLearningRate: 0.2, clippedCountStddev: 1 },
    });
    const { alone, aloneWeights, edged, edgedResult } = await compareRuns(dp);
    expect(edged.logs).toContain("edges: edges send one partial sum per round");
    expect(edgedResult.rounds).toHaveLength(2);
    for (const [i, record] of edgedResult.rounds.entries()) {
      expect(record.kept).toBeUndefined();
      expect(record.participants).toBe(4);
      expect(record.trainLoss).toBeUndefined();
      expect(record.epsilon).toBeGreaterThan(0);
      expect(record.epsilon).toBe(alone.rounds[i].epsilon);
      expect(record.clipNorm).toBe(alone.rounds[i].clipNorm);
    }
    // Adaptive clipping counted the clients' bits: the clip norm moved.
    expect(edgedResult.rounds[0].clipNorm).not.toBe(dp.clipNorm);
    expect(maxAbsDiff(aloneWeights, edged.fed.coordinator.loop.globalWeights.values)).toBeLessThan(1e-5);
    expectNoReportsOnLinks(edged.link, 8);
    for (const outcome of payloadsOf(edged.link, "edgeOutcome")) expect([0, 1]).toContain(outcome.clippedBit);
  });

  it("an edge clips a hostile client's huge update to S, refuses a report, and the honest clients' round completes", async () => {
    const S = 1;
    // No noise, so the aggregate can be checked exactly; clipping does not depend on it.
    const run = await dpFederation(dpSettings("central", { noiseMultiplier: 0, clipNorm: S }), true, 1, 2);
    const initial = run.fed.coordinator.loop.globalWeights.values.slice();
    const atEdges = run.fed.edges.map((edge) => recordIncoming(edge.sockets, "fitResult"));
    const [huge, reporter] = await Promise.all(run.fed.edges.map((edge) => RogueClient.connect(edge.url)));
    for (const rogue of [huge, reporter]) {
      cleanups.push(() => rogue.close());
      expect((await rogue.hello()).ok).toBe(true);
    }
    const [hugeIns, reporterIns] = await Promise.all([huge.nextFit(), reporter.nextFit()]);
    expect(hugeIns.dp).toEqual({ clipNorm: S, noiseStd: 0, reportClippedBit: false });
    const n = totalSize(hugeIns.weights.specs);
    expect(await huge.sendResult(bareResult(hugeIns, new Float32Array(n).fill(1000)))).toEqual({ ok: true });
    expect(await reporter.sendResult(craftResult(reporterIns))).toMatchObject({
      ok: false,
      code: ErrorCode.PRIVACY_VIOLATION,
    });

    const [record] = (await run.fed.result).rounds;
    expect(record).toMatchObject({ sampled: 6, participants: 5, failures: 1 });
    expect(record.kept).toBeUndefined();
    expect(record.failureDetails).toEqual([
      { clientId: reporter.clientId, reason: "rejected", code: ErrorCode.PRIVACY_VIOLATION },
    ]);
    expect(run.logs.some((l) => /clipped 1 update\(s\) that arrived with a norm above S=1 /.test(l))).toBe(
      true,
    );
    expectNoReportsOnLinks(run.link, 5);

    // global = initial + Σ clip(Δ) / m, m = 6 sampled: take the honest clients' updates (read at
    // their edges, already clipped by the clients themselves) out of the step.
    const honest = atEdges
      .flat()
      .filter((m) => m.clientId !== huge.clientId && m.clientId !== reporter.clientId)
      .map((m) => {
        const update = m.payload.update as { delta: { data: Uint8Array } };
        return bytesToFloat32(update.delta.data);
      });
    expect(honest).toHaveLength(4);
    const final = run.fed.coordinator.loop.globalWeights.values;
    const hugeShare = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      hugeShare[i] = 6 * (final[i] - initial[i]) - honest.reduce((s, d) => s + d[i], 0);
    }
    // Clipped to S at its edge, not dropped: its direction survives with norm S.
    expect(l2Norm(hugeShare)).toBeLessThanOrEqual(S * 1.001);
    expect(l2Norm(hugeShare)).toBeGreaterThan(S * 0.999);
    expect(Math.min(...hugeShare)).toBeGreaterThan(0);
    for (const delta of honest) expect(l2Norm(delta)).toBeLessThanOrEqual(S);
  });
});

describe("local and distributed DP over edges", () => {
  it.each(["local", "distributed"] as const)(
    "%s: the edges sum the clients' noised updates; the model and ε are one coordinator's",
    async (mode) => {
      const dp = dpSettings(mode, { noiseMultiplier: 0.05, clipNorm: 2 });
      const { alone, aloneWeights, edged, edgedResult } = await compareRuns(dp);
      for (const [i, record] of edgedResult.rounds.entries()) {
        expect(record.kept).toBeUndefined();
        expect(record.participants).toBe(4);
        expect(record.trainLoss).toBeUndefined();
        expect(record.epsilon).toBe(alone.rounds[i].epsilon);
      }
      expect(edgedResult.rounds.at(-1)?.epsilon).toBeGreaterThan(0);
      expect(maxAbsDiff(aloneWeights, edged.fed.coordinator.loop.globalWeights.values)).toBeLessThan(1e-5);
      expect(edgedResult.final.accuracy).toBeGreaterThan(edgedResult.initial.accuracy);
      // Noise the clients added is not cut: nothing is clipped on the way.
      expect(edged.logs.some((l) => l.includes("clipped"))).toBe(false);
      expectNoReportsOnLinks(edged.link, 8);
    },
  );
});

/** A fitResult with a bare update: the delta and nothing about the data behind it. */
function bareResult(ins: FitInstructions, values: Float32Array) {
  return {
    round: ins.round,
    nonce: ins.nonce,
    update: { delta: { specs: ins.weights.specs, data: float32ToBytes(values) } },
  };
}
