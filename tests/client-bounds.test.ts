import { Encoder, type Packet, PacketType } from "socket.io-parser";
import { afterEach, describe, expect, it } from "vitest";
import { encodePublicKey, generateIdentity } from "../common/crypto/identity.js";
import { ErrorCode } from "../common/errors.js";
import { getFlatWeights } from "../common/models/tf-weights.js";
import { totalSize } from "../common/weights.js";
import type { CoordinatorResult } from "../server/coordinator.js";
import { eventually, PATIENCE_MS } from "./helpers/eventually.js";
import {
  craftResult,
  maxDeviationFromAggregate,
  RogueClient,
  type RogueFederation,
  startRogueFederation,
  successesOf,
} from "./helpers/rogue.js";

/**
 * Bounds on what one client can do to a round, over real Socket.IO: a raw client claims too many
 * examples, sends updates near FLT_MAX, or writes a bare NaN in its JSON, while honest ClientNodes
 * take part in the same rounds. Each time the hostile message gets a typed refusal, the rounds
 * complete with the honest updates, and the model stays what they make of it.
 */
describe("bounds on one client over real Socket.IO", () => {
  let fed: RogueFederation | undefined;
  afterEach(async () => {
    await fed?.close();
    fed = undefined;
  });

  /** Every round aggregated the honest clients only; the rogue was refused with `code` each time. */
  function expectHonestRounds(
    f: RogueFederation,
    result: CoordinatorResult,
    rogue: RogueClient,
    code: string,
  ) {
    for (const record of result.rounds) {
      expect(record.kept).toBeUndefined();
      expect(record.participants).toBe(f.honest.length);
      expect(record.failureDetails).toEqual([{ clientId: rogue.clientId, reason: "rejected", code }]);
    }
    const final = getFlatWeights(f.coordinator.model);
    expect(final.values.every(Number.isFinite)).toBe(true);
    expect(result.final.accuracy).toBeGreaterThan(result.initial.accuracy + 0.1);
    expect(f.coordinator.sockets.refusals.get(code)).toBe(result.rounds.length);
    expect(rogue.socket.connected).toBe(true);
  }

  it("refuses a claim of 2^53 − 1 examples with EXAMPLES_OUT_OF_RANGE; FedAvg weighs only the honest updates", async () => {
    fed = await startRogueFederation({
      coordinator: { limits: { maxExamplesPerClient: 1000 } },
      honestOptions: () => ({ declareExamples: true }),
    });
    const rogue = await fed.admitRogue();
    const run = fed.coordinator.run();
    const ins = await rogue.nextFit();
    const ack = await rogue.sendResult(craftResult(ins, undefined, Number.MAX_SAFE_INTEGER));
    expect(ack).toMatchObject({
      ok: false,
      code: ErrorCode.EXAMPLES_OUT_OF_RANGE,
      message: expect.stringContaining("maxExamplesPerClient (1000)"),
    });
    const result = await run;
    expectHonestRounds(fed, result, rogue, ErrorCode.EXAMPLES_OUT_OF_RANGE);
    const successes = successesOf(fed.outcomes);
    expect(successes.map((s) => s.numExamples)).toEqual([150, 150]);
    expect(
      maxDeviationFromAggregate(fed.initial, successes, getFlatWeights(fed.coordinator.model)),
    ).toBeLessThan(1e-6);
  });

  it("holds a client to the size it declared at hello, and refuses a declaration above the cap", async () => {
    fed = await startRogueFederation({
      coordinator: { limits: { maxExamplesPerClient: 1000 } },
      // Both declare their real size (150); the second then reports one example more.
      honestOptions: (i) => ({
        declareExamples: true,
        ...(i === 1
          ? { behaviour: { transformUpdate: (u) => ({ ...u, numExamples: u.numExamples + 1 }) } }
          : {}),
      }),
    });
    const oversized = await RogueClient.connect(fed.coordinator.url);
    expect(await oversized.hello({ numExamples: 1001 })).toMatchObject({
      ok: false,
      code: ErrorCode.EXAMPLES_OUT_OF_RANGE,
    });
    expect(await oversized.disconnected()).toBe("io server disconnect");

    const rogue = await fed.admitRogue({ numExamples: 50 });
    const run = fed.coordinator.run();
    const ins = await rogue.nextFit();
    expect(await rogue.sendResult(craftResult(ins, undefined, 51))).toMatchObject({
      ok: false,
      code: ErrorCode.EXAMPLES_OUT_OF_RANGE,
      message: expect.stringContaining("the 50 examples this client declared"),
    });
    const result = await run;
    const [honest, overclaimer] = fed.honest;
    const record = result.rounds[0];
    expect(record.participants).toBe(1);
    expect(record.failureDetails).toEqual(
      expect.arrayContaining([
        { clientId: rogue.clientId, reason: "rejected", code: ErrorCode.EXAMPLES_OUT_OF_RANGE },
        { clientId: overclaimer.clientId, reason: "rejected", code: ErrorCode.EXAMPLES_OUT_OF_RANGE },
      ]),
    );
    // The ack reaches the client after the coordinator has moved on: wait for it.
    await eventually(() =>
      expect(overclaimer.lastAck).toMatchObject({ message: expect.stringContaining("the 150 examples") }),
    );
    const successes = successesOf(fed.outcomes);
    expect(successes.map((s) => s.clientId)).toEqual([honest.clientId]);
    expect(
      maxDeviationFromAggregate(fed.initial, successes, getFlatWeights(fed.coordinator.model)),
    ).toBeLessThan(1e-6);
  });

  it("refuses ±3e38 deltas for two rounds with NORM_TOO_LARGE: the model stays finite and keeps learning", async () => {
    fed = await startRogueFederation({ coordinator: { rounds: 2 } });
    const rogue = await fed.admitRogue();
    const run = fed.coordinator.run();
    for (let round = 1; round <= 2; round++) {
      const ins = await rogue.nextFit();
      expect(ins.round).toBe(round);
      // Finite, so the NaN/Inf scan passes them; two accepted rounds would overflow the model.
      const huge = Float32Array.from({ length: totalSize(ins.weights.specs) }, (_, i) =>
        i % 2 ? 3e38 : -3e38,
      );
      expect(await rogue.sendResult(craftResult(ins, huge, 100))).toMatchObject({
        ok: false,
        code: ErrorCode.NORM_TOO_LARGE,
      });
    }
    const result = await run;
    expectHonestRounds(fed, result, rogue, ErrorCode.NORM_TOO_LARGE);
    const honest = fed.honest;
    await eventually(() => expect(honest.map((c) => c.roundsTrained)).toEqual([2, 2]));
  });

  it("answers a bare NaN in a fitResult's JSON with a typed refusal, on a connection that stays up", async () => {
    fed = await startRogueFederation();
    const rogue = await fed.admitRogue();
    const run = fed.coordinator.run();
    const ins = await rogue.nextFit();
    const valid = craftResult(ins);
    // What Python's json.dumps writes for float("nan"): the bare token, in the packet's JSON text.
    const message = {
      ...valid,
      update: { ...valid.update, metrics: { ...valid.update?.metrics, loss: 1234.5 } },
    };
    const ackId = 4242;
    const [text, ...attachments] = new Encoder().encode({
      type: PacketType.EVENT,
      nsp: "/",
      id: ackId,
      data: ["fitResult", message],
    });
    expect(text).toContain('"loss":1234.5');
    // Before the lenient parser, the coordinator closed the connection instead of answering.
    const acked = Promise.race([
      new Promise<unknown>((resolve) => {
        rogue.socket.io.on("packet", (packet: Packet) => {
          if (packet.type === PacketType.ACK && packet.id === ackId) resolve((packet.data as unknown[])[0]);
        });
      }),
      rogue.disconnected().then((reason) => ({ disconnected: reason })),
    ]);
    const engine = rogue.socket.io.engine;
    engine.write((text as string).replace('"loss":1234.5', '"loss":NaN'));
    for (const attachment of attachments) engine.write(attachment as Buffer);
    expect(await acked).toMatchObject({
      ok: false,
      code: ErrorCode.BAD_PAYLOAD,
      message: expect.stringMatching(/update\.metrics\.loss: .*NaN/),
    });
    expect(rogue.socket.connected).toBe(true);

    // The request is still pending: the same socket answers it properly and is counted.
    expect(await rogue.sendResult(valid)).toEqual({ ok: true });
    const result = await run;
    expect(result.rounds[0]).toMatchObject({ participants: 3, failures: 0, dropouts: 0 });
    expect(result.rounds[0].kept).toBeUndefined();
    expect(successesOf(fed.outcomes).map((s) => s.clientId)).toContain(rogue.clientId);
  });

  it("closes a connection whose packet carries more than 10 binary attachments, says why, and answers the same message with 10", async () => {
    fed = await startRogueFederation();
    const bin = (n: number) => new Uint8Array(n).fill(n & 0xff);
    // The shape of the prove that live fuzz seed 1253848512 left unanswered: a mutated signature
    // turned into an array with binaries nested under keys like $b64 and valueOf. `tail` makes
    // its last two binaries (12 in all) or plain numbers (10 in all).
    const signature = (tail: (n: number) => unknown) => [
      94,
      22,
      bin(14),
      191,
      {
        $b64: [
          { hasOwnProperty: -1502230869, x: bin(2) },
          { b: bin(2), "": { size: { toString: 0 } } },
          [bin(1), bin(2880), { length: { toString: 0 } }],
        ],
        toString: [{ length: null, "2r8s": bin(972) }, [bin(1040), true, null], bin(649), [{ length: 1e9 }]],
        valueOf: { "Q|": { constructor: "AMxDw5g", $b64: bin(1848) }, sO3: { 1: tail(1414) }, FZ: [tail(2)] },
      },
      106,
    ];
    const identity = generateIdentity();
    const stranger = await RogueClient.connect(fed.coordinator.url);
    try {
      const challenged = async () => {
        const hello = await stranger.hello({ publicKey: encodePublicKey(identity.publicKey) });
        expect(hello).toMatchObject({ ok: true, challenge: expect.anything() });
      };
      await challenged();
      const withinCap = await stranger.socket.timeout(PATIENCE_MS).emitWithAck("prove", {
        signature: signature((n) => n),
      });
      expect(withinCap).toMatchObject({ ok: false, code: ErrorCode.UNAUTHORIZED });
      expect(stranger.socket.connected).toBe(true);

      // Over the cap Socket.IO's parser refuses the packet before any handler runs, so no ack
      // can be sent: the connection is closed (docs/PROTOCOL.md §1) and the log says why.
      await challenged();
      let answered = false;
      stranger.socket.emit("prove", { signature: signature(bin) }, () => {
        answered = true;
      });
      expect(await stranger.disconnected()).toMatch(/transport/);
      expect(answered).toBe(false);
      await eventually(() => expect(fed?.logs.join("\n")).toMatch(/closed: too many attachments/));
    } finally {
      stranger.close();
    }

    // The coordinator carries on: a round with the honest clients and a newcomer completes.
    const rogue = await fed.admitRogue();
    const run = fed.coordinator.run();
    expect(await rogue.sendResult(craftResult(await rogue.nextFit()))).toEqual({ ok: true });
    const result = await run;
    expect(result.rounds[0]).toMatchObject({ participants: 3, failures: 0 });
  });
});
