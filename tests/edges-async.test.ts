import { describe, expect, it } from "vitest";
import { keyPairFromSeed } from "../common/crypto/ed25519.js";
import { clientIdOf } from "../common/crypto/identity.js";
import { ErrorCode } from "../common/errors.js";
import type { AnyStrategy } from "../common/strategy/async-strategy.js";
import { FedAsync } from "../common/strategy/fedasync.js";
import { FedBuff } from "../common/strategy/fedbuff.js";
import type { CoordinatorOptions } from "../server/coordinator.js";
import type { RoundRecord } from "../server/round-record.js";
import type { VirtualTiming } from "../server/virtual-timing.js";
import { expectOnlyEnvelopes, type LinkMessage, payloadsOf, recordLinks } from "./helpers/edge-link.js";
import { maxAbsDiff, startFederation } from "./helpers/edges.js";
import { useRedis } from "./helpers/redis.js";

const fitConfig = { epochs: 1, batchSize: 16, learningRate: 0.1 };

const redis = useRedis();

// Fixed identities: a client's id is then the same in every run, and so is the seeded pick.
const identities = Array.from({ length: 4 }, (_, i) => keyPairFromSeed(new Uint8Array(32).fill(i + 1)));

/** The final global weights, records and logs of one run, on one coordinator or over two edges. */
async function run(
  strategy: () => AnyStrategy,
  withEdges: boolean,
  options: { rounds: number; coordinator?: Partial<CoordinatorOptions> },
) {
  const logs: string[] = [];
  let link: LinkMessage[] = [];
  const fed = await startFederation({
    strategy,
    ...(withEdges ? { redis } : {}),
    rounds: options.rounds,
    ...(options.coordinator ? { coordinator: options.coordinator } : {}),
    client: (i) => ({ identity: identities[i] }),
    beforeClients: async (coordinator) => {
      link = recordLinks(coordinator);
    },
    logs,
  });
  try {
    const result = await fed.result;
    return {
      weights: fed.coordinator.loop.globalWeights.values.slice(),
      result,
      weightsServed: fed.coordinator.scaleOut?.links.weightsServed ?? 0,
      logs,
      link,
    };
  } finally {
    await fed.close();
  }
}

/** Who was aggregated into which version, trained on which version: the run's schedule. */
function schedule(rounds: readonly RoundRecord[]) {
  return rounds.map((r) => (r.updates ?? []).map((u) => [u.clientId, u.trainedOn, u.staleness, u.weight]));
}

/** Client i's fits take 10 + 15·i simulated seconds, whoever holds it. */
const secondsById = new Map(identities.map((id, i) => [clientIdOf(id.publicKey), 10 + 15 * i]));
const fixedTiming: VirtualTiming = {
  fit: (input) => ({ arrived: true, at: input.sentAt + (secondsById.get(input.clientId) ?? 1) }),
  earliestArrival: (input) => input.sentAt + 1,
  exchange: (input) => ({ arrived: true, at: input.sentAt }),
  isAvailable: () => true,
};

describe("asynchronous strategies over edges", () => {
  it("FedBuff over two edges publishes every version with staleness, and each edge fetches a version once", async () => {
    const edged = await run(() => new FedBuff({ concurrency: 4, bufferSize: 4, fitConfig }), true, {
      rounds: 3,
    });
    const { rounds, initial, final } = edged.result;
    expect(edged.logs).toContain("edges: edges forward each update as it arrives (fedbuff is asynchronous)");
    expect(rounds.map((r) => r.round)).toEqual([1, 2, 3]);
    expect(rounds.map((r) => r.participants)).toEqual([4, 4, 4]);
    for (const r of rounds) {
      expect(r.failures).toBe(0);
      // Each update met version `round − 1` when it arrived: τ is counted at the coordinator.
      for (const u of r.updates ?? []) expect(u.trainedOn + u.staleness).toBe(r.round - 1);
    }
    const updates = rounds.flatMap((r) => r.updates ?? []);
    // Three fits start on version 0 while the buffer fills, and arrive after version 1.
    expect(Math.max(...updates.map((u) => u.staleness))).toBeGreaterThanOrEqual(1);
    expect(final.accuracy).toBeGreaterThan(initial.accuracy + 0.1);
    // Twelve fits and more trained on versions 0 to 2; each of the two edges asked for a version once.
    expect(edged.weightsServed).toBeGreaterThanOrEqual(2);
    expect(edged.weightsServed).toBeLessThanOrEqual(2 * 3);
  });

  it("FedAsync with one fit in flight: the same schedule and model over two edges as on one coordinator", async () => {
    const strategy = () => new FedAsync({ concurrency: 1, mixing: 0.6, fitConfig });
    const alone = await run(strategy, false, { rounds: 5 });
    const edged = await run(strategy, true, { rounds: 5 });
    expect(schedule(edged.result.rounds)).toEqual(schedule(alone.result.rounds));
    expect(
      new Set(edged.result.rounds.flatMap((r) => r.updates ?? []).map((u) => u.clientId)).size,
    ).toBeGreaterThan(1);
    expect(maxAbsDiff(alone.weights, edged.weights)).toBeLessThan(1e-6);
    expect(edged.result.final.accuracy).toBeGreaterThan(edged.result.initial.accuracy + 0.1);
  });

  it("FedBuff with four fits in flight on the virtual clock: the same versions, staleness and model over two edges", async () => {
    const strategy = () => new FedBuff({ concurrency: 4, bufferSize: 2, fitConfig });
    const coordinator = { roundControl: { virtualClock: { timing: fixedTiming, deadlineSeconds: 1000 } } };
    const alone = await run(strategy, false, { rounds: 4, coordinator });
    const edged = await run(strategy, true, { rounds: 4, coordinator });
    expect(schedule(edged.result.rounds)).toEqual(schedule(alone.result.rounds));
    // Client 0 fills version 1 alone (at 10 and 20 s); client 1's fit on version 0 arrives at 25 s.
    expect(edged.result.rounds[1].updates?.[0]).toMatchObject({ trainedOn: 0, staleness: 1 });
    expect(edged.result.rounds.map((r) => r.simulatedSeconds)).toEqual(
      alone.result.rounds.map((r) => r.simulatedSeconds),
    );
    expect(maxAbsDiff(alone.weights, edged.weights)).toBeLessThan(1e-6);
  });

  it("a client that leaves its edge mid-fit is a CLIENT_DISCONNECTED failure, as on one coordinator, and the run goes on", async () => {
    let dropped = false;
    const logs: string[] = [];
    const fed = await startFederation({
      strategy: () => new FedBuff({ concurrency: 4, bufferSize: 2, fitConfig }),
      redis,
      rounds: 3,
      logs,
      client: (i) => ({
        identity: identities[i],
        // Client 0 drops its connection on its first fit (then reconnects to its edge).
        ...(i === 0
          ? {
              behaviour: {
                dropInRound: () => {
                  if (dropped) return false;
                  dropped = true;
                  return true;
                },
              },
            }
          : {}),
      }),
    });
    try {
      const result = await fed.result;
      expect(result.stopReason).toBeUndefined();
      expect(result.rounds.map((r) => r.participants)).toEqual([2, 2, 2]);
      const leaver = clientIdOf(identities[0].publicKey);
      const failures = result.rounds.flatMap((r) => r.failureDetails);
      expect(failures[0]).toEqual({
        clientId: leaver,
        reason: "disconnect",
        code: ErrorCode.CLIENT_DISCONNECTED,
      });
      // Until the edge's roster notice comes, the coordinator may pick it again; the edge says it
      // does not hold it, and it is left out until a roster has it back.
      for (const f of failures.slice(1))
        expect(f).toEqual({ clientId: leaver, reason: "disconnect", code: ErrorCode.EDGE_UNREACHABLE });
    } finally {
      await fed.close();
    }
  });

  it("FedBuff with envelopes over two edges: each update crosses the link sealed, and the model learns", async () => {
    const edged = await run(() => new FedBuff({ concurrency: 4, bufferSize: 4, fitConfig }), true, {
      rounds: 3,
      coordinator: { asyncControl: { envelope: true } },
    });
    const { rounds, initial, final } = edged.result;
    expect(rounds.map((r) => r.round)).toEqual([1, 2, 3]);
    expect(rounds.map((r) => r.participants)).toEqual([4, 4, 4]);
    for (const r of rounds) {
      expect(r.failures).toBe(0);
      for (const u of r.updates ?? []) expect(u.trainedOn + u.staleness).toBe(r.round - 1);
    }
    expect(final.accuracy).toBeGreaterThan(initial.accuracy + 0.1);
    // Each fit's update crossed the link as the envelope its client sealed to that fit's key.
    const sealed = payloadsOf(edged.link, "edgeSealed");
    expect(sealed.length).toBeGreaterThanOrEqual(12);
    expect(new Set(sealed.map((s) => s.key)).size).toBe(sealed.length);
    expectOnlyEnvelopes(sealed);
    // No edge's outcome carries a plaintext update: the coordinator took each from its envelope.
    const fits = payloadsOf(edged.link, "edgeOutcome");
    expect(fits.length).toBeGreaterThanOrEqual(12);
    for (const outcome of fits) {
      expect(outcome.ok).toBe(true);
      expect(outcome).not.toHaveProperty("delta");
    }
  });

  it("FedAsync with envelopes and one fit in flight: the same model over two edges as on one coordinator", async () => {
    const strategy = () => new FedAsync({ concurrency: 1, mixing: 0.6, fitConfig });
    const coordinator = { asyncControl: { envelope: true } };
    const alone = await run(strategy, false, { rounds: 4, coordinator });
    const edged = await run(strategy, true, { rounds: 4, coordinator });
    expect(schedule(edged.result.rounds)).toEqual(schedule(alone.result.rounds));
    expect(payloadsOf(edged.link, "edgeSealed")).toHaveLength(4);
    expect(maxAbsDiff(alone.weights, edged.weights)).toBeLessThan(1e-5);
    expect(edged.result.final.accuracy).toBeGreaterThan(edged.result.initial.accuracy + 0.1);
  });
});
