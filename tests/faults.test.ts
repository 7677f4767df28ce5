import { afterEach, describe, expect, it } from "vitest";
import { clientIdOf, generateIdentity } from "../common/crypto/identity.js";
import { ErrorCode } from "../common/errors.js";
import { getFlatWeights } from "../common/models/tf-weights.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import { eventually } from "./helpers/eventually.js";
import { smallMnist, startTestCoordinator } from "./helpers/federation.js";
import { RogueClient, type RogueFederation, startRogueFederation, successesOf } from "./helpers/rogue.js";

/** Clients that vanish or come back mid-run, against a real coordinator over Socket.IO. */
describe("client faults over real Socket.IO", () => {
  let fed: RogueFederation | undefined;
  afterEach(async () => {
    await fed?.close();
    fed = undefined;
  });

  it("a client that disconnects after receiving fit fails with 'disconnect'; rounds go on without it", async () => {
    fed = await startRogueFederation({ coordinator: { rounds: 2, waitForClientsMs: 300 } });
    const rogue = await fed.admitRogue();
    const run = fed.coordinator.run();
    await rogue.nextFit();
    rogue.close();
    const result = await run;

    const [first, second] = result.rounds;
    expect(first).toMatchObject({ sampled: 3, participants: 2, failures: 1 });
    expect(first.failureDetails).toEqual([
      { clientId: rogue.clientId, reason: "disconnect", code: ErrorCode.CLIENT_DISCONNECTED },
    ]);
    expect(first.kept).toBeUndefined();
    // Round 2 waited briefly for the third client, then ran with the two that are left.
    expect(second).toMatchObject({ sampled: 2, participants: 2, failures: 0 });
    expect(second.kept).toBeUndefined();
    expect(fed.logs.some((l) => l.includes("only 2 of 3 clients connected"))).toBe(true);
    const final = getFlatWeights(fed.coordinator.model);
    expect(final.values.every(Number.isFinite)).toBe(true);
    expect(result.final.accuracy).toBeGreaterThan(result.initial.accuracy);
  });

  it("anonymous connections that come and go do not grow the registry", async () => {
    fed = await startRogueFederation();
    const before = fed.coordinator.sockets.knownClients();
    for (let i = 0; i < 15; i++) {
      const rogue = await fed.admitRogue();
      rogue.close();
    }
    await eventually(() => expect(fed?.coordinator.sockets.knownClients()).toBe(before));
  });

  it("a connection that never says hello is closed once helloTimeoutMs has passed, and never counted", async () => {
    const { test } = await smallMnist(1, 1, 10);
    const logs: string[] = [];
    const coordinator = await startTestCoordinator(test, { helloTimeoutMs: 100 }, logs);
    try {
      const silent = await RogueClient.connect(coordinator.url);
      expect(await silent.disconnected()).toBe("io server disconnect");
      expect(logs.some((l) => l.includes("sent no hello in time; closing"))).toBe(true);
      expect(coordinator.sockets.count()).toBe(0);
      expect(coordinator.sockets.knownClients()).toBe(0);
    } finally {
      await coordinator.close();
    }
  });

  it("with fewer survivors than minFitClients the round keeps the old model bit for bit", async () => {
    fed = await startRogueFederation({
      coordinator: {
        strategy: new FedAvg({
          fitConfig: { epochs: 1, batchSize: 16, learningRate: 0.1 },
          minFitClients: 3,
        }),
      },
    });
    const rogue = await fed.admitRogue();
    const run = fed.coordinator.run();
    await rogue.nextFit();
    rogue.close();
    const result = await run;

    const record = result.rounds[0];
    expect(record).toMatchObject({ sampled: 3, participants: 2, failures: 1 });
    expect(record.failureDetails).toEqual([
      { clientId: rogue.clientId, reason: "disconnect", code: ErrorCode.CLIENT_DISCONNECTED },
    ]);
    expect(record.kept).toMatch(/fewer than minFitClients=3/);
    // The survivors did send real (non-zero) updates; they must not have been applied.
    const successes = successesOf(fed.outcomes);
    expect(successes).toHaveLength(2);
    for (const s of successes) expect(s.delta.some((v) => v !== 0)).toBe(true);
    // After run() the coordinator's tf model holds the final global weights.
    const final = getFlatWeights(fed.coordinator.model);
    expect(final.specs).toEqual(fed.initial.specs);
    expect(Buffer.from(final.values.buffer, final.values.byteOffset, final.values.byteLength)).toEqual(
      Buffer.from(fed.initial.values.buffer, fed.initial.values.byteOffset, fed.initial.values.byteLength),
    );
    expect(result.final).toEqual(result.initial);
  });

  it("a client that reconnects with the same identity keeps its client id and is counted once", async () => {
    const identity = generateIdentity();
    const expectedId = clientIdOf(identity.publicKey);
    fed = await startRogueFederation({
      honest: 3,
      rogues: 0,
      coordinator: { rounds: 2 },
      // Client 2 drops its connection when round 1's fit arrives, then reconnects by itself.
      honestOptions: (i) => (i === 2 ? { identity, behaviour: { dropInRound: (round) => round === 1 } } : {}),
    });
    const returning = fed.honest[2];
    expect(returning.clientId).toBe(expectedId);

    const result = await fed.coordinator.run();
    const [first, second] = result.rounds;
    expect(first).toMatchObject({ sampled: 3, participants: 2, failures: 1 });
    expect(first.failureDetails).toEqual([
      { clientId: expectedId, reason: "disconnect", code: ErrorCode.CLIENT_DISCONNECTED },
    ]);
    // Round 2 waited for all three; the returning client trained under its old id.
    expect(second).toMatchObject({ sampled: 3, participants: 3, failures: 0 });
    const roundTwoIds = successesOf(fed.outcomes.slice(3)).map((s) => s.clientId);
    expect(roundTwoIds).toContain(expectedId);
    expect(returning.clientId).toBe(expectedId);
    expect(fed.logs.some((l) => l.includes(`handshake: ${expectedId} reconnected`))).toBe(true);

    const ids = fed.coordinator.sockets.connected().map((c) => c.id);
    expect(ids).toHaveLength(3);
    expect(new Set(ids).size).toBe(3);
    expect(ids).toContain(expectedId);
  });
});
