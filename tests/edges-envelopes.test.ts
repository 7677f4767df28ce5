import { describe, expect, it } from "vitest";
import { generateIdentity, type Identity } from "../common/crypto/identity.js";
import { seededNormalSource } from "../common/dp/noise.js";
import { ErrorCode } from "../common/errors.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import { totalSize } from "../common/weights.js";
import type { FitOutcome } from "../server/client-proxy.js";
import { type DpSettings, PrivacyPlugin } from "../server/plugins/privacy.js";
import { useCleanups } from "./helpers/cleanups.js";
import { expectOnlyEnvelopes, type LinkMessage, payloadsOf, recordLinks } from "./helpers/edge-link.js";
import { type Federation, maxAbsDiff, startFederation } from "./helpers/edges.js";
import { useRedis } from "./helpers/redis.js";
import { successesOf } from "./helpers/rogue.js";
import { admitRogueWithIdentity, sendForgedMisaddressedHonest } from "./helpers/security.js";

/**
 * Envelopes over edges: clients seal their updates to the coordinator's round key, which no edge
 * holds, so each edge relays every sealed update over its link and the coordinator opens and
 * checks it as it would a client's own (docs/SCALE-OUT.md, "Privacy over edges").
 */

const fitConfig = { epochs: 1, batchSize: 16, learningRate: 0.1 };
const strategy = () => new FedAvg({ fractionFit: 1, minFitClients: 4, fitConfig });

const redis = useRedis();
const cleanups = useCleanups();

interface SealedRun {
  fed: Federation;
  outcomes: FitOutcome[];
  link: LinkMessage[];
  logs: string[];
}

/** The small MNIST federation with envelopes, on one coordinator or over two edges. */
async function sealedFederation(
  withEdges: boolean,
  rounds: number,
  rogues = 0,
  dp?: DpSettings,
): Promise<SealedRun> {
  const logs: string[] = [];
  const outcomes: FitOutcome[] = [];
  let link: LinkMessage[] = [];
  const fed = await startFederation({
    strategy,
    rounds,
    ...(withEdges ? { redis } : {}),
    coordinator: {
      // The rogues a test connects are waited for too.
      minAvailableClients: 4 + rogues,
      plugin: ({ log }) =>
        new PrivacyPlugin({
          envelope: true,
          ...(dp ? { dp, noise: seededNormalSource(5) } : {}),
          expectedClientsPerRound: 4 + rogues,
          log,
        }),
      onClientOutcome: (_round, outcome) => outcomes.push(outcome),
    },
    client: () => ({ identity: generateIdentity() }),
    beforeClients: async (coordinator) => {
      link = recordLinks(coordinator);
    },
    logs,
  });
  cleanups.push(() => fed.close());
  return { fed, outcomes, link, logs };
}

describe("envelopes over edges", () => {
  it("edges relay each sealed update unopened; the coordinator opens them and the model is one coordinator's", async () => {
    const alone = await sealedFederation(false, 2);
    const aloneResult = await alone.fed.result;
    const aloneWeights = alone.fed.coordinator.loop.globalWeights.values.slice();

    const edged = await sealedFederation(true, 2);
    const result = await edged.fed.result;
    expect(edged.logs).toContain("edges: edges forward each update (they are sealed to the coordinator)");
    for (const record of result.rounds) {
      expect(record.kept).toBeUndefined();
      expect(record.participants).toBe(4);
    }
    expect(maxAbsDiff(aloneWeights, edged.fed.coordinator.loop.globalWeights.values)).toBeLessThan(1e-5);
    expect(result.final.accuracy).toBeCloseTo(aloneResult.final.accuracy, 2);

    // All an edge passed on of an update is the envelope its client sealed: never a delta or a report.
    const sealed = payloadsOf(edged.link, "edgeSealed");
    expect(sealed).toHaveLength(8);
    expectOnlyEnvelopes(sealed);
    for (const payload of sealed) {
      expect(payload.envelope).toMatchObject({
        version: 2,
        round: payload.round,
        chunks: expect.arrayContaining([expect.any(Uint8Array)]),
        signature: expect.any(Uint8Array),
      });
    }
    const outcomes = payloadsOf(edged.link, "edgeOutcome");
    expect(outcomes).toHaveLength(8);
    for (const outcome of outcomes) {
      expect(outcome.ok).toBe(true);
      expect(Object.keys(outcome).sort()).toEqual(["bytes", "clientId", "key", "ok", "round"]);
    }
    // The coordinator opened them: each success holds the delta and the report from inside the envelope.
    const successes = successesOf(edged.outcomes);
    expect(successes).toHaveLength(8);
    for (const s of successes) {
      expect(s.delta.length).toBe(aloneWeights.length);
      expect(s.numExamples).toBeGreaterThan(0);
      expect(s.metrics).toBeDefined();
    }
  });

  it("a tampered or misaddressed envelope sent to an edge is refused with one coordinator's code; a replay too", async () => {
    const run = await sealedFederation(true, 1, 3);
    const [edge0, edge1] = run.fed.edges;
    const identities: Identity[] = [generateIdentity(), generateIdentity(), generateIdentity()];
    const [forger, misaddressed, honest] = await Promise.all(
      identities.map((identity, i) => admitRogueWithIdentity((i % 2 === 0 ? edge0 : edge1).url, identity)),
    );
    for (const rogue of [forger, misaddressed, honest]) cleanups.push(() => rogue.close());

    const [forgerIns, misaddressedIns, honestIns] = await Promise.all(
      [forger, misaddressed, honest].map((r) => r.nextFit()),
    );
    expect(honestIns.envelopeKey).toHaveLength(32);
    const values = Float32Array.from(
      { length: totalSize(honestIns.weights.specs) },
      (_, i) => ((i % 5) - 2) * 1e-3,
    );
    await sendForgedMisaddressedHonest(
      [forger, misaddressed, honest],
      [forgerIns, misaddressedIns, honestIns],
      [identities[0], identities[1], identities[2]],
      values,
    );

    const result = await run.fed.result;
    const [record] = result.rounds;
    expect(record).toMatchObject({ sampled: 7, participants: 5, failures: 2 });
    expect(record.kept).toBeUndefined();
    expect([...(record.failureDetails ?? [])].sort((a, b) => a.code.localeCompare(b.code))).toEqual([
      { clientId: forger.clientId, reason: "rejected", code: ErrorCode.BAD_SIGNATURE },
      { clientId: misaddressed.clientId, reason: "rejected", code: ErrorCode.DECRYPT_FAILED },
    ]);
    // What the coordinator aggregated from the rogue is bit for bit what it sealed.
    const opened = successesOf(run.outcomes).find((s) => s.clientId === honest.clientId);
    expect(opened?.numExamples).toBe(40);
    expect(opened?.delta.every((v, i) => v === values[i])).toBe(true);
  });

  it("central DP inside envelopes: the coordinator opens, clips and noises; model and ε are one coordinator's", async () => {
    const dp: DpSettings = {
      mode: "central",
      noiseMultiplier: 0.5,
      clipNorm: 1,
      delta: 1e-5,
      conversion: "classic",
    };
    const alone = await sealedFederation(false, 2, 0, dp);
    const aloneResult = await alone.fed.result;
    const edged = await sealedFederation(true, 2, 0, dp);
    const result = await edged.fed.result;
    for (const [i, record] of result.rounds.entries()) {
      expect(record.kept, JSON.stringify(record.kept)).toBeUndefined();
      expect(record.participants).toBe(4);
      expect(record.trainLoss).toBeUndefined();
      expect(record.epsilon).toBeGreaterThan(0);
      expect(record.epsilon).toBe(aloneResult.rounds[i].epsilon);
    }
    const weights = edged.fed.coordinator.loop.globalWeights.values;
    expect(maxAbsDiff(alone.fed.coordinator.loop.globalWeights.values, weights)).toBeLessThan(1e-5);
    expect(payloadsOf(edged.link, "edgeSealed")).toHaveLength(8);
    // The report stays on the client even inside the envelope: the coordinator opened none.
    for (const s of successesOf(edged.outcomes)) {
      expect(s.numExamples).toBeUndefined();
      expect(s.metrics).toBeUndefined();
    }
  });
});
