import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createRoundKeyPair } from "../common/crypto/envelope.js";
import { clientIdOf, encodePublicKey, generateIdentity, type Identity } from "../common/crypto/identity.js";
import { makeSelfSignedCert } from "../common/crypto/tls.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { getFlatWeights } from "../common/models/tf-weights.js";
import type { FitInstructions } from "../common/protocol.js";
import { totalSize } from "../common/weights.js";
import type { CoordinatorResult } from "../server/coordinator.js";
import { PrivacyPlugin } from "../server/plugins/privacy.js";
import { eventually } from "./helpers/eventually.js";
import { smallMnist, startClients, startTestCoordinator } from "./helpers/federation.js";
import {
  craftResult,
  maxDeviationFromAggregate,
  RogueClient,
  type RogueFederation,
  startRogueFederation,
  successesOf,
} from "./helpers/rogue.js";
import {
  admitRogueWithIdentity,
  helloWithIdentity,
  type ReceivedMessage,
  recordIncoming,
  relabelEnvelope,
  sealedResult,
} from "./helpers/security.js";

/**
 * The security features end to end: a real coordinator (Socket.IO over HTTP or HTTPS on port 0),
 * real ClientNodes, and raw socket.io-client rogues that present keys, sign challenges and seal
 * envelopes by hand so each test can put one forged or misdirected message in front of it.
 */
describe("security over a real Socket.IO server", () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function makeCert(): Promise<{ certPath: string; keyPath: string }> {
    const dir = await mkdtemp(join(tmpdir(), "fedsim-tls-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return makeSelfSignedCert(dir);
  }

  it("TLS: clients trusting the self-signed cert train over https; a client without the CA never gets in", async () => {
    const { certPath, keyPath } = await makeCert();
    const ca = await readFile(certPath, "utf8");
    const { parts, test } = await smallMnist(2, 150, 200);
    const logs: string[] = [];
    const coordinator = await startTestCoordinator(
      test,
      { tls: { certPath, keyPath }, rounds: 1, minAvailableClients: 2 },
      logs,
    );
    cleanups.push(() => coordinator.close());
    expect(coordinator.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);

    const untrustingLogs: string[] = [];
    const [untrusting] = startClients(
      coordinator.url,
      [parts[0]],
      () => ({ label: "untrusting" }),
      untrustingLogs,
    );
    cleanups.push(() => untrusting.close());
    let settled = false;
    untrusting.ready.then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    // The TLS handshake fails before Socket.IO sees a connection; the client says why.
    await eventually(() =>
      expect(untrustingLogs.join("\n")).toMatch(/untrusting: connect: .*(self-signed|certificate)/i),
    );
    expect(settled).toBe(false);
    expect(untrusting.socket.connected).toBe(false);
    expect(coordinator.sockets.count()).toBe(0);
    untrusting.close();

    const clients = startClients(coordinator.url, parts, () => ({ ca }), logs);
    cleanups.push(() => {
      for (const c of clients) c.close();
    });
    await Promise.all(clients.map((c) => c.ready));
    const result = await coordinator.run();
    expect(result.rounds[0]).toMatchObject({ participants: 2, sampled: 2, failures: 0 });
    expect(
      coordinator.sockets
        .connected()
        .map((c) => c.id)
        .sort(),
    ).toEqual(clients.map((c) => c.clientId).sort());
    expect(settled).toBe(false);
    await eventually(() => expect(clients.map((c) => c.roundsTrained)).toEqual([1, 1]));
  });

  it("allowlist: a listed identity joins under its key-derived id; an unknown key and a key-less client get UNAUTHORIZED", async () => {
    const listed = generateIdentity();
    const stranger = generateIdentity();
    const { parts, test } = await smallMnist(3, 30, 100);
    const coordinator = await startTestCoordinator(test, {
      auth: { kind: "allowlist", publicKeys: new Set([encodePublicKey(listed.publicKey)]) },
      rounds: 1,
      minAvailableClients: 1,
    });
    cleanups.push(() => coordinator.close());
    const logs: string[] = [];
    const nodes = startClients(
      coordinator.url,
      parts,
      (i) => (i === 0 ? { identity: listed } : i === 1 ? { identity: stranger } : {}),
      logs,
    );
    cleanups.push(() => {
      for (const n of nodes) n.close();
    });
    const [member, unknown, anonymous] = nodes;
    await expect(member.ready).resolves.toBe(clientIdOf(listed.publicKey));

    const unknownError = await unknown.ready.then(
      () => null,
      (err: unknown) => err,
    );
    expect(unknownError).toBeInstanceOf(FedsimError);
    expect(unknownError).toMatchObject({ code: ErrorCode.UNAUTHORIZED, message: /not on the allowlist/ });
    const anonymousError = await anonymous.ready.then(
      () => null,
      (err: unknown) => err,
    );
    expect(anonymousError).toBeInstanceOf(FedsimError);
    expect(anonymousError).toMatchObject({ code: ErrorCode.UNAUTHORIZED, message: /requires a public key/ });
    expect(coordinator.sockets.refusals.get(ErrorCode.UNAUTHORIZED)).toBe(2);

    // Only the member is registered, sampled and trains.
    expect(coordinator.sockets.connected().map((c) => c.id)).toEqual([clientIdOf(listed.publicKey)]);
    const result = await coordinator.run();
    expect(result.rounds[0]).toMatchObject({ participants: 1, sampled: 1, failures: 0 });
    await eventually(() => expect(nodes.map((n) => n.roundsTrained)).toEqual([1, 0, 0]));
  });

  it("a forged handshake (listed public key, challenge signed by another key) gets BAD_SIGNATURE, and so does a replayed proof", async () => {
    const member = generateIdentity();
    const mallory = generateIdentity();
    const { test } = await smallMnist(1, 10, 50);
    const coordinator = await startTestCoordinator(test, {
      auth: { kind: "allowlist", publicKeys: new Set([encodePublicKey(member.publicKey)]) },
    });
    cleanups.push(() => coordinator.close());
    const connect = async () => {
      const rogue = await RogueClient.connect(coordinator.url);
      cleanups.push(() => rogue.close());
      return rogue;
    };

    const forger = await connect();
    const forged = await helloWithIdentity(forger, member, { signer: mallory });
    expect(forged.hello).toMatchObject({ ok: true, clientId: "" });
    expect(forged.challenge).toHaveLength(32);
    expect(forged.prove).toMatchObject({ ok: false, code: ErrorCode.BAD_SIGNATURE });
    expect(await forger.disconnected()).toBe("io server disconnect");
    expect(coordinator.sockets.count()).toBe(0);

    // The genuine key holder passes the very same checks.
    const genuine = await connect();
    const real = await helloWithIdentity(genuine, member);
    expect(real.prove).toMatchObject({ ok: true, clientId: clientIdOf(member.publicKey) });
    // The model is only revealed once the signature verifies.
    expect((real.prove as { model?: { specs: unknown[] } }).model?.specs.length).toBeGreaterThan(0);

    // A captured valid proof is worthless on another connection: every connection gets a fresh challenge.
    const replayer = await connect();
    const replayed = await helloWithIdentity(replayer, member, { signature: real.signature });
    expect(replayed.challenge).not.toEqual(real.challenge);
    expect(replayed.prove).toMatchObject({ ok: false, code: ErrorCode.BAD_SIGNATURE });
    expect(await replayer.disconnected()).toBe("io server disconnect");

    expect(coordinator.sockets.refusals.get(ErrorCode.BAD_SIGNATURE)).toBe(2);
    expect(coordinator.sockets.connected().map((c) => c.id)).toEqual([clientIdOf(member.publicKey)]);
    expect(genuine.socket.connected).toBe(true);
  });

  describe("sealed envelopes over the wire", () => {
    interface SealedFederation {
      fed: RogueFederation;
      rogues: RogueClient[];
      /** Every fitResult as the coordinator's sockets received it. */
      received: ReceivedMessage[];
    }

    /** Two honest ClientNodes with identities, a PrivacyPlugin requiring envelopes, and rogues. */
    async function startSealedFederation(rogueIdentities: Identity[], rounds = 1): Promise<SealedFederation> {
      const fed = await startRogueFederation({
        rogues: rogueIdentities.length,
        coordinator: {
          rounds,
          plugin: ({ log }) =>
            new PrivacyPlugin({ envelope: true, expectedClientsPerRound: 2 + rogueIdentities.length, log }),
        },
        honestOptions: () => ({ identity: generateIdentity() }),
      });
      cleanups.push(() => fed.close());
      const rogues: RogueClient[] = [];
      for (const identity of rogueIdentities) {
        const rogue = await admitRogueWithIdentity(fed.coordinator.url, identity);
        cleanups.push(() => rogue.close());
        expect(rogue.clientId).toBe(clientIdOf(identity.publicKey));
        rogues.push(rogue);
      }
      return { fed, rogues, received: recordIncoming(fed.coordinator.sockets, "fitResult") };
    }

    /** The honest clients sent sealed updates only: an envelope and never a plain update. */
    function expectHonestSealed({ fed, received }: SealedFederation, rounds: number): void {
      for (const client of fed.honest) {
        const sent = received.filter((m) => m.clientId === client.clientId);
        expect(sent).toHaveLength(rounds);
        for (const { payload } of sent) {
          expect(payload.update).toBeUndefined();
          expect(payload.envelope).toMatchObject({
            version: 2,
            round: payload.round,
            chunks: expect.arrayContaining([expect.any(Uint8Array)]),
            signature: expect.any(Uint8Array),
          });
        }
      }
    }

    /** One round: the global model is FedAvg over the accepted (decrypted) updates and moved. */
    function expectAggregateOfAccepted(
      fed: RogueFederation,
      result: CoordinatorResult,
      participants: number,
    ) {
      expect(result.rounds[0].participants).toBe(participants);
      expect(result.rounds[0].kept).toBeUndefined();
      const successes = successesOf(fed.outcomes);
      expect(successes).toHaveLength(participants);
      for (const client of fed.honest) expect(successes.map((s) => s.clientId)).toContain(client.clientId);
      const final = getFlatWeights(fed.coordinator.model);
      expect(maxDeviationFromAggregate(fed.initial, successes, final)).toBeLessThan(1e-6);
      const moved = final.values.reduce((m, v, i) => Math.max(m, Math.abs(v - fed.initial.values[i])), 0);
      expect(moved).toBeGreaterThan(1e-3);
    }

    it("a normal round: every update travels sealed and the coordinator opens exactly what was sealed", async () => {
      const identity = generateIdentity();
      const sealed = await startSealedFederation([identity]);
      const [rogue] = sealed.rogues;
      const run = sealed.fed.coordinator.run();
      const ins = await rogue.nextFit();
      expect(ins.envelopeKey).toHaveLength(32);
      const values = Float32Array.from(
        { length: totalSize(ins.weights.specs) },
        (_, i) => ((i % 7) - 3) * 1e-3,
      );
      expect(await rogue.sendResult(await sealedResult(ins, identity, { values, numExamples: 40 }))).toEqual({
        ok: true,
      });
      const result = await run;

      expect(result.rounds[0]).toMatchObject({ sampled: 3, failures: 0 });
      expectHonestSealed(sealed, 1);
      const fromRogue = sealed.received.filter((m) => m.clientId === rogue.clientId);
      expect(fromRogue).toHaveLength(1);
      expect(fromRogue[0].payload.update).toBeUndefined();
      // What aggregation got from the rogue is bit for bit the delta it sealed.
      const opened = successesOf(sealed.fed.outcomes).find((s) => s.clientId === rogue.clientId);
      expect(opened?.numExamples).toBe(40);
      expect(opened?.delta.length).toBe(values.length);
      expect(opened?.delta.every((v, i) => v === values[i])).toBe(true);
      expectAggregateOfAccepted(sealed.fed, result, 3);
    });

    const refusals: {
      what: string;
      code: string;
      craft: (ins: FitInstructions, identity: Identity) => unknown | Promise<unknown>;
    }[] = [
      {
        what: "a plain update where an envelope is required",
        code: ErrorCode.BAD_PAYLOAD,
        craft: (ins) => craftResult(ins),
      },
      {
        what: "an envelope whose signature was made with another key",
        code: ErrorCode.BAD_SIGNATURE,
        craft: (ins, identity) => sealedResult(ins, identity, { signWith: generateIdentity() }),
      },
      {
        what: "an envelope sealed to a key other than the round's",
        code: ErrorCode.DECRYPT_FAILED,
        craft: (ins, identity) =>
          sealedResult(ins, identity, { serverPublicKey: createRoundKeyPair().publicKey }),
      },
      {
        what: "an envelope in format 1 (one nacl.box, no version field)",
        code: ErrorCode.PROTOCOL_VERSION,
        craft: async (ins, identity) => {
          const { envelope } = await sealedResult(ins, identity);
          const { version: _, chunks, ...header } = envelope;
          return { round: ins.round, nonce: ins.nonce, envelope: { ...header, ciphertext: chunks[0] } };
        },
      },
    ];

    for (const { what, code, craft } of refusals) {
      it(`refuses ${what} with ${code}; the honest clients complete the round`, async () => {
        const identity = generateIdentity();
        const sealed = await startSealedFederation([identity]);
        const [rogue] = sealed.rogues;
        const run = sealed.fed.coordinator.run();
        const ins = await rogue.nextFit();
        expect(await rogue.sendResult(await craft(ins, identity))).toMatchObject({ ok: false, code });
        const result = await run;
        expect(result.rounds[0]).toMatchObject({ sampled: 3, failures: 1 });
        expect(result.rounds[0].failureDetails).toEqual([
          { clientId: rogue.clientId, reason: "rejected", code },
        ]);
        expect(sealed.fed.coordinator.sockets.refusals.get(code)).toBe(1);
        expect(rogue.socket.connected).toBe(true);
        expectHonestSealed(sealed, 1);
        expectAggregateOfAccepted(sealed.fed, result, 2);
      });
    }

    it("refuses the same sealed envelope sent twice with REPLAY; the first copy counts once", async () => {
      const identity = generateIdentity();
      const sealed = await startSealedFederation([identity]);
      const [rogue] = sealed.rogues;
      const run = sealed.fed.coordinator.run();
      const ins = await rogue.nextFit();
      const message = await sealedResult(ins, identity, { numExamples: 50 });
      expect(await rogue.sendResult(message)).toEqual({ ok: true });
      // The socket proxy answers first: the request (nonce) was already answered, so the message
      // never reaches the envelope opener, whose own (signer, nonce) memory is defence in depth.
      const again = await rogue.sendResult(message);
      expect(again).toMatchObject({ ok: false, code: ErrorCode.REPLAY, message: /already received/ });
      const result = await run;
      expect(await rogue.sendResult(message)).toMatchObject({ ok: false, code: ErrorCode.REPLAY });
      expect(sealed.fed.coordinator.sockets.refusals.get(ErrorCode.REPLAY)).toBe(2);
      expect(result.rounds[0]).toMatchObject({ sampled: 3, failures: 0 });
      expect(successesOf(sealed.fed.outcomes).filter((s) => s.clientId === rogue.clientId)).toHaveLength(1);
      expectHonestSealed(sealed, 1);
      expectAggregateOfAccepted(sealed.fed, result, 3);
    });

    it("refuses a round-1 envelope in round 2 with STALE_ROUND, and the same ciphertext relabelled and re-signed with DECRYPT_FAILED", async () => {
      const staleIdentity = generateIdentity();
      const relabelIdentity = generateIdentity();
      const sealed = await startSealedFederation([staleIdentity, relabelIdentity], 2);
      const [stale, relabel] = sealed.rogues;
      const run = sealed.fed.coordinator.run();

      const [staleIns1, relabelIns1] = await Promise.all([stale.nextFit(), relabel.nextFit()]);
      const staleFirst = await sealedResult(staleIns1, staleIdentity);
      const relabelFirst = await sealedResult(relabelIns1, relabelIdentity);
      expect(await stale.sendResult(staleFirst)).toEqual({ ok: true });
      expect(await relabel.sendResult(relabelFirst)).toEqual({ ok: true });

      const [staleIns2, relabelIns2] = await Promise.all([stale.nextFit(), relabel.nextFit()]);
      expect(staleIns2.round).toBe(staleIns1.round + 1);
      expect(Buffer.from(staleIns2.envelopeKey ?? []).equals(Buffer.from(staleIns1.envelopeKey ?? []))).toBe(
        false,
      );
      // Captured as is: the opener checks the envelope's round before anything else.
      const staleAck = await stale.sendResult({
        round: staleIns2.round,
        nonce: staleIns2.nonce,
        envelope: staleFirst.envelope,
      });
      expect(staleAck).toMatchObject({
        ok: false,
        code: ErrorCode.STALE_ROUND,
        message: /envelope is for round 1/,
      });
      // Its own signer can relabel and re-sign it, passing the round and signature checks, but
      // the ciphertext is sealed to round 1's key, which round 2 does not hold.
      const relabelAck = await relabel.sendResult({
        round: relabelIns2.round,
        nonce: relabelIns2.nonce,
        envelope: relabelEnvelope(relabelFirst.envelope!, relabelIns2.round, relabelIdentity),
      });
      expect(relabelAck).toMatchObject({ ok: false, code: ErrorCode.DECRYPT_FAILED });

      const result = await run;
      expect(result.rounds[0]).toMatchObject({ participants: 4, failures: 0 });
      expect(result.rounds[1]).toMatchObject({ participants: 2, sampled: 4, failures: 2 });
      expect(result.rounds[1].kept).toBeUndefined();
      const byClient = (a: { clientId: string }, b: { clientId: string }) =>
        a.clientId.localeCompare(b.clientId);
      expect([...result.rounds[1].failureDetails].sort(byClient)).toEqual(
        [
          { clientId: stale.clientId, reason: "rejected", code: ErrorCode.STALE_ROUND },
          { clientId: relabel.clientId, reason: "rejected", code: ErrorCode.DECRYPT_FAILED },
        ].sort(byClient),
      );
      expect(sealed.fed.coordinator.sockets.refusals.get(ErrorCode.STALE_ROUND)).toBe(1);
      expect(sealed.fed.coordinator.sockets.refusals.get(ErrorCode.DECRYPT_FAILED)).toBe(1);
      expectHonestSealed(sealed, 2);
    });
  });

  it("open admission logs a WARNING; an authenticated coordinator does not", async () => {
    const { test } = await smallMnist(1, 10, 50);
    const openLogs: string[] = [];
    const open = await startTestCoordinator(test, { auth: { kind: "open" } }, openLogs);
    cleanups.push(() => open.close());
    expect(openLogs.some((l) => l.includes("WARNING") && l.includes("open"))).toBe(true);
    // Loopback: no plaintext-network warning.
    expect(openLogs.some((l) => l.includes("without TLS"))).toBe(false);

    const tokenLogs: string[] = [];
    const guarded = await startTestCoordinator(
      test,
      { auth: { kind: "token", token: "s3cret-token-for-tests" } },
      tokenLogs,
    );
    cleanups.push(() => guarded.close());
    expect(tokenLogs.some((l) => l.includes("WARNING"))).toBe(false);
  });

  it("listening beyond loopback without TLS logs the 'without TLS' warning; with TLS it does not", async () => {
    const { test } = await smallMnist(1, 10, 50);
    const auth = { kind: "token" as const, token: "s3cret-token-for-tests" };
    const plainLogs: string[] = [];
    const plain = await startTestCoordinator(test, { host: "0.0.0.0", auth }, plainLogs);
    cleanups.push(() => plain.close());
    expect(plain.url).toMatch(/^http:\/\/0\.0\.0\.0:\d+$/);
    expect(plainLogs.some((l) => l.includes("WARNING") && l.includes("0.0.0.0 without TLS"))).toBe(true);

    const { certPath, keyPath } = await makeCert();
    const tlsLogs: string[] = [];
    const secure = await startTestCoordinator(
      test,
      { host: "0.0.0.0", auth, tls: { certPath, keyPath } },
      tlsLogs,
    );
    cleanups.push(() => secure.close());
    expect(secure.url).toMatch(/^https:\/\/0\.0\.0\.0:\d+$/);
    expect(tlsLogs.some((l) => l.includes("without TLS"))).toBe(false);
    expect(tlsLogs.some((l) => l.includes("WARNING"))).toBe(false);
  });
});
