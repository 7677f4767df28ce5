import { describe, expect, it } from "vitest";
import { generateIdentity, type Identity } from "../common/crypto/identity.js";
import { ErrorCode } from "../common/errors.js";
import { FedBuff } from "../common/strategy/fedbuff.js";
import { totalSize } from "../common/weights.js";
import { useCleanups } from "./helpers/cleanups.js";
import { startFederation } from "./helpers/edges.js";
import { useRedis } from "./helpers/redis.js";
import { admitRogueWithIdentity, sendForgedMisaddressedHonest } from "./helpers/security.js";

/**
 * Envelopes with an asynchronous strategy over edges: each fit carries the coordinator's key for
 * that fit alone, the edge relays the sealed update unopened, and the coordinator refuses a bad
 * one with the code a client's own socket would get (docs/SCALE-OUT.md, "Privacy over edges").
 */

const fitConfig = { epochs: 1, batchSize: 16, learningRate: 0.1 };

const redis = useRedis();
const cleanups = useCleanups();

describe("envelopes with FedBuff over edges", () => {
  it("a forged, misaddressed or replayed sealed update is refused with one coordinator's code", async () => {
    const fed = await startFederation({
      // Every client, rogues too, gets a fit at once; the run needs more updates than the four
      // honest clients' first fits, so the rogues' fits are still in flight when they answer.
      strategy: () => new FedBuff({ concurrency: 7, bufferSize: 5, fitConfig }),
      redis,
      rounds: 2,
      coordinator: { minAvailableClients: 7, asyncControl: { envelope: true } },
      client: () => ({ identity: generateIdentity() }),
    });
    cleanups.push(() => fed.close());
    const [edge0, edge1] = fed.edges;
    const identities: Identity[] = [generateIdentity(), generateIdentity(), generateIdentity()];
    const [forger, misaddressed, honest] = await Promise.all(
      identities.map((identity, i) => admitRogueWithIdentity((i % 2 === 0 ? edge0 : edge1).url, identity)),
    );
    for (const rogue of [forger, misaddressed, honest]) cleanups.push(() => rogue.close());
    const [forgerIns, misaddressedIns, honestIns] = await Promise.all(
      [forger, misaddressed, honest].map((r) => r.nextFit()),
    );
    // Each fit has its own key: fits span model versions.
    const keys = [forgerIns, misaddressedIns, honestIns].map((ins) =>
      Buffer.from(ins.envelopeKey ?? []).toString("hex"),
    );
    expect(new Set(keys).size).toBe(3);
    expect(honestIns.envelopeKey).toHaveLength(32);

    // The second is sealed to another key, e.g. another fit's: this fit's opener cannot open it.
    const values = new Float32Array(totalSize(honestIns.weights.specs)).fill(1e-3);
    await sendForgedMisaddressedHonest(
      [forger, misaddressed, honest],
      [forgerIns, misaddressedIns, honestIns],
      [identities[0], identities[1], identities[2]],
      values,
    );

    const result = await fed.result;
    expect(result.rounds.map((r) => r.round)).toEqual([1, 2]);
    const failures = result.rounds.flatMap((r) => r.failureDetails ?? []);
    expect(failures).toContainEqual({
      clientId: forger.clientId,
      reason: "rejected",
      code: ErrorCode.BAD_SIGNATURE,
    });
    expect(failures).toContainEqual({
      clientId: misaddressed.clientId,
      reason: "rejected",
      code: ErrorCode.DECRYPT_FAILED,
    });
    // The honest rogue's update, opened at the coordinator, counted in a version.
    const updates = result.rounds.flatMap((r) => r.updates ?? []);
    expect(updates.map((u) => u.clientId)).toContain(honest.clientId);
  });
});
