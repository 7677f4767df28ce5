import { afterEach, describe, expect, it } from "vitest";
import type { ClientNode } from "../client/node.js";
import { ErrorCode } from "../common/errors.js";
import { getFlatWeights } from "../common/models/tf-weights.js";
import { type FitInstructions, PROTOCOL_VERSION } from "../common/protocol.js";
import { totalSize } from "../common/weights.js";
import type { CoordinatorResult } from "../server/coordinator.js";
import {
  craftResult,
  maxDeviationFromAggregate,
  RogueClient,
  type RogueFederation,
  startRogueFederation,
  successesOf,
} from "./helpers/rogue.js";

/**
 * One hostile message per test, sent by a raw Socket.IO client while two honest ClientNodes take
 * part in the same round: the coordinator must refuse it with the right code, finish the round
 * with the honest clients, and aggregate only what it accepted.
 */
describe("bad input from a client over real Socket.IO", () => {
  let fed: RogueFederation | undefined;
  afterEach(async () => {
    await fed?.close();
    fed = undefined;
  });

  /** The round finished, the global model is exactly FedAvg over the accepted updates. */
  function expectHonestModel(
    f: RogueFederation,
    result: CoordinatorResult,
    { participants = 2, honest = f.honest }: { participants?: number; honest?: ClientNode[] } = {},
  ): void {
    const record = result.rounds[0];
    expect(record.participants).toBe(participants);
    expect(record.kept).toBeUndefined();
    const successes = successesOf(f.outcomes);
    expect(successes).toHaveLength(participants);
    for (const client of honest) expect(successes.map((s) => s.clientId)).toContain(client.clientId);
    // After run() the coordinator's tf model holds the final global weights.
    const final = getFlatWeights(f.coordinator.model);
    expect(final.values.every(Number.isFinite)).toBe(true);
    expect(maxDeviationFromAggregate(f.initial, successes, final)).toBeLessThan(1e-6);
    // The honest clients trained, so the check above compares against a real change.
    const moved = final.values.reduce((m, v, i) => Math.max(m, Math.abs(v - f.initial.values[i])), 0);
    expect(moved).toBeGreaterThan(1e-3);
    expect(Number.isFinite(result.final.loss)).toBe(true);
    expect(result.final.accuracy).toBeGreaterThan(result.initial.accuracy + 0.1);
  }

  /** The rogue is the round's only failure, refused (not timed out) with `code`. */
  function expectRogueRefused(f: RogueFederation, rogue: RogueClient, code: string): void {
    const record = f.coordinator.loop.records[0];
    expect(record.sampled).toBe(3);
    expect(record.failures).toBe(1);
    expect(record.failureDetails).toEqual([{ clientId: rogue.clientId, reason: "rejected", code }]);
    expect(f.coordinator.sockets.refusals.get(code) ?? 0).toBeGreaterThanOrEqual(1);
    // A refusal does not cost the rogue its connection: the coordinator keeps serving it.
    expect(rogue.socket.connected).toBe(true);
  }

  const corruptions: {
    what: string;
    code: string;
    craft: (ins: FitInstructions) => unknown;
  }[] = [
    {
      what: "an update for another round",
      code: ErrorCode.STALE_ROUND,
      craft: (ins) => ({ ...craftResult(ins), round: ins.round + 1 }),
    },
    {
      what: "tensors of the wrong shape (same total size, transposed kernel)",
      code: ErrorCode.BAD_SHAPE,
      craft: (ins) => {
        const message = craftResult(ins);
        const specs = ins.weights.specs.map((s) => ({ name: s.name, shape: [...s.shape].reverse() }));
        expect(specs[0].shape).not.toEqual(ins.weights.specs[0].shape);
        return { ...message, update: { ...message.update, delta: { ...message.update?.delta, specs } } };
      },
    },
    {
      what: "a delta one float short",
      code: ErrorCode.BAD_SHAPE,
      craft: (ins) => craftResult(ins, new Float32Array(totalSize(ins.weights.specs) - 1)),
    },
    {
      what: "a NaN in the delta",
      code: ErrorCode.NON_FINITE,
      craft: (ins) => {
        const values = new Float32Array(totalSize(ins.weights.specs));
        values[17] = Number.NaN;
        return craftResult(ins, values);
      },
    },
    {
      what: "an Infinity in the delta",
      code: ErrorCode.NON_FINITE,
      craft: (ins) => {
        const values = new Float32Array(totalSize(ins.weights.specs));
        values[values.length - 1] = Number.NEGATIVE_INFINITY;
        return craftResult(ins, values);
      },
    },
    {
      what: "a fitResult without its update",
      code: ErrorCode.BAD_PAYLOAD,
      craft: (ins) => ({ round: ins.round, nonce: ins.nonce }),
    },
  ];

  for (const { what, code, craft } of corruptions) {
    it(`refuses ${what} with ${code} and aggregates only the honest updates`, async () => {
      fed = await startRogueFederation();
      const rogue = await fed.admitRogue();
      const run = fed.coordinator.run();
      const ins = await rogue.nextFit();
      const ack = await rogue.sendResult(craft(ins));
      expect(ack).toMatchObject({ ok: false, code });
      const result = await run;
      expectRogueRefused(fed, rogue, code);
      expectHonestModel(fed, result);
    });
  }

  it("refuses malformed messages (wrong types, missing fields) with BAD_PAYLOAD", async () => {
    fed = await startRogueFederation();
    const rogue = await fed.admitRogue();
    const run = fed.coordinator.run();
    const ins = await rogue.nextFit();
    const valid = craftResult(ins);
    const update = valid.update!;
    const malformed: unknown[] = [
      "not an object",
      null,
      { ...valid, round: String(ins.round) },
      { ...valid, nonce: 12345678 },
      { ...valid, update: { ...update, numExamples: 0.5 } },
      { ...valid, update: { ...update, metrics: { loss: 1 } } },
      { ...valid, update: { ...update, delta: { specs: update.delta.specs, data: [0, 0, 0, 0] } } },
      { ...valid, update: { ...update, delta: { specs: "fc1/kernel", data: update.delta.data } } },
      // JSON null is not "absent": an optional field that is null fails the schema like any bad value.
      { ...valid, envelope: null },
      { ...valid, update: { ...update, clippedBit: null } },
    ];
    for (const message of malformed) {
      expect(await rogue.sendResult(message)).toMatchObject({ ok: false, code: ErrorCode.BAD_PAYLOAD });
    }
    // A message that cannot be parsed names no request, so the request is still open: the
    // rogue's last chance is a parseable fitResult without an update, refused and recorded.
    expect(await rogue.sendResult({ round: ins.round, nonce: ins.nonce })).toMatchObject({
      ok: false,
      code: ErrorCode.BAD_PAYLOAD,
    });
    const result = await run;
    expect(fed.coordinator.sockets.refusals.get(ErrorCode.BAD_PAYLOAD)).toBe(malformed.length + 1);
    expectRogueRefused(fed, rogue, ErrorCode.BAD_PAYLOAD);
    expectHonestModel(fed, result);
  });

  it("accepts an update once and refuses the same fitResult again with REPLAY", async () => {
    fed = await startRogueFederation();
    const rogue = await fed.admitRogue();
    const run = fed.coordinator.run();
    const ins = await rogue.nextFit();
    const message = craftResult(ins, new Float32Array(totalSize(ins.weights.specs)), 50);
    expect(await rogue.sendResult(message)).toEqual({ ok: true });
    expect(await rogue.sendResult(message)).toMatchObject({ ok: false, code: ErrorCode.REPLAY });
    const result = await run;
    // Still refused after the round is over.
    expect(await rogue.sendResult(message)).toMatchObject({ ok: false, code: ErrorCode.REPLAY });
    expect(fed.coordinator.sockets.refusals.get(ErrorCode.REPLAY)).toBe(2);
    expect(result.rounds[0].failures).toBe(0);
    // The rogue's (zero) update counts once, with its 50 examples, not twice.
    expect(successesOf(fed.outcomes).filter((s) => s.clientId === rogue.clientId)).toHaveLength(1);
    expectHonestModel(fed, result, { participants: 3 });
  });

  it("refuses a reply that arrives after the deadline with STALE_ROUND", async () => {
    // The rogue waits for its cancel, so the deadline must pass. It is the one every test here
    // gives the honest clients: a short one would time them out too on a busy machine.
    fed = await startRogueFederation();
    const rogue = await fed.admitRogue();
    const run = fed.coordinator.run();
    const ins = await rogue.nextFit();
    await rogue.cancelled(ins.nonce);
    expect(await rogue.sendResult(craftResult(ins))).toMatchObject({
      ok: false,
      code: ErrorCode.STALE_ROUND,
    });
    const result = await run;
    expect(result.rounds[0].failureDetails).toEqual([
      { clientId: rogue.clientId, reason: "timeout", code: ErrorCode.CLIENT_TIMEOUT },
    ]);
    expect(fed.coordinator.sockets.refusals.get(ErrorCode.STALE_ROUND)).toBe(1);
    expectHonestModel(fed, result);
  });

  it("refuses a fitResult with an unknown nonce with NOT_SAMPLED and keeps the real request open", async () => {
    fed = await startRogueFederation();
    const rogue = await fed.admitRogue();
    const run = fed.coordinator.run();
    const ins = await rogue.nextFit();
    const forged = { ...craftResult(ins), nonce: "0123456789abcdef01234567" };
    expect(forged.nonce).not.toBe(ins.nonce);
    expect(await rogue.sendResult(forged)).toMatchObject({ ok: false, code: ErrorCode.NOT_SAMPLED });
    // The forged nonce did not consume the rogue's request: its real answer is still accepted.
    expect(await rogue.sendResult(craftResult(ins))).toEqual({ ok: true });
    const result = await run;
    expect(fed.coordinator.sockets.refusals.get(ErrorCode.NOT_SAMPLED)).toBe(1);
    expect(result.rounds[0].failures).toBe(0);
    expectHonestModel(fed, result, { participants: 3 });
  });

  it("refuses a fitResult before hello with UNKNOWN_CLIENT; the round runs without it", async () => {
    fed = await startRogueFederation({ rogues: 0 });
    const rogue = await RogueClient.connect(fed.coordinator.url);
    try {
      const forged = craftResult({
        round: 1,
        nonce: "0123456789abcdef",
        weights: { specs: fed.initial.specs, data: new Uint8Array(0) },
      } as FitInstructions);
      const ack = await rogue.sendResult(forged);
      expect(ack).toMatchObject({ ok: false, code: ErrorCode.UNKNOWN_CLIENT });
      expect(fed.coordinator.sockets.count()).toBe(2);
      const result = await fed.coordinator.run();
      expect(fed.coordinator.sockets.refusals.get(ErrorCode.UNKNOWN_CLIENT)).toBe(1);
      expect(result.rounds[0]).toMatchObject({ sampled: 2, failures: 0 });
      expectHonestModel(fed, result);
    } finally {
      rogue.close();
    }
  });

  it("refuses a hello with null for an optional field (BAD_PAYLOAD, still connected), then one with the wrong protocol version (disconnected)", async () => {
    fed = await startRogueFederation({ rogues: 0 });
    const rogue = await RogueClient.connect(fed.coordinator.url);
    try {
      for (const field of ["token", "publicKey", "label", "capabilities"]) {
        expect(await rogue.hello({ [field]: null })).toMatchObject({
          ok: false,
          code: ErrorCode.BAD_PAYLOAD,
        });
      }
      expect(rogue.socket.connected).toBe(true);
      expect(fed.coordinator.sockets.refusals.get(ErrorCode.BAD_PAYLOAD)).toBe(4);
      const reply = await rogue.hello({ protocolVersion: PROTOCOL_VERSION + 1 });
      expect(reply).toMatchObject({ ok: false, code: ErrorCode.PROTOCOL_VERSION });
      expect(await rogue.disconnected()).toBe("io server disconnect");
      expect(fed.coordinator.sockets.refusals.get(ErrorCode.PROTOCOL_VERSION)).toBe(1);
      const result = await fed.coordinator.run();
      expect(result.rounds[0]).toMatchObject({ sampled: 2, failures: 0 });
      expectHonestModel(fed, result);
    } finally {
      rogue.close();
    }
  });

  it("refuses a wrong token in token mode with UNAUTHORIZED and disconnects the client", async () => {
    const token = "correct-horse-battery";
    fed = await startRogueFederation({
      rogues: 0,
      coordinator: { auth: { kind: "token", token } },
      honestOptions: () => ({ token }),
    });
    const rogue = await RogueClient.connect(fed.coordinator.url);
    try {
      const reply = await rogue.hello({ token: "wrong-horse-battery" });
      expect(reply).toMatchObject({ ok: false, code: ErrorCode.UNAUTHORIZED });
      expect(await rogue.disconnected()).toBe("io server disconnect");
      expect(fed.coordinator.sockets.refusals.get(ErrorCode.UNAUTHORIZED)).toBe(1);
      const result = await fed.coordinator.run();
      expect(result.rounds[0]).toMatchObject({ sampled: 2, failures: 0 });
      expectHonestModel(fed, result);
    } finally {
      rogue.close();
    }
  });

  it("refuses a second hello on an admitted connection with DUPLICATE: one connection, one client", async () => {
    fed = await startRogueFederation();
    const rogue = await fed.admitRogue();
    const again = await rogue.hello();
    expect(again).toMatchObject({ ok: false, code: ErrorCode.DUPLICATE });
    expect(fed.coordinator.sockets.count()).toBe(3);
    expect(fed.coordinator.sockets.connected().map((c) => c.id)).toContain(rogue.clientId);
    const run = fed.coordinator.run();
    const ins = await rogue.nextFit();
    expect(await rogue.sendResult(craftResult(ins))).toEqual({ ok: true });
    const result = await run;
    expect(result.rounds[0]).toMatchObject({ sampled: 3, failures: 0 });
    expectHonestModel(fed, result, { participants: 3 });
  });

  it("drops a connection that sends more than maxPayloadBytes; the round and the coordinator carry on", async () => {
    fed = await startRogueFederation();
    const rogue = await fed.admitRogue();
    const limit = rogue.welcome?.maxPayloadBytes ?? 0;
    expect(limit).toBeGreaterThan(0);
    const run = fed.coordinator.run();
    const ins = await rogue.nextFit();
    const oversized = craftResult(ins);
    oversized.update!.delta.data = new Uint8Array(limit + 4096);
    let answered = false;
    rogue.socket.emit("fitResult", oversized, () => {
      answered = true;
    });
    expect(await rogue.disconnected()).toMatch(/transport/);
    expect(answered).toBe(false);
    const result = await run;
    expect(result.rounds[0].failureDetails).toEqual([
      { clientId: rogue.clientId, reason: "disconnect", code: ErrorCode.CLIENT_DISCONNECTED },
    ]);
    expectHonestModel(fed, result);
    // The coordinator still admits clients, and the honest ones are still connected.
    const newcomer = await fed.admitRogue();
    expect(newcomer.clientId).not.toBe(rogue.clientId);
    expect(fed.coordinator.sockets.count()).toBe(3);
  });

  it("a ClientNode refuses locally to send an update over the advertised limit (PAYLOAD_TOO_LARGE)", async () => {
    // The third client inflates its update past the coordinator's limit before sending it.
    const oversizedFloats = 400_000;
    fed = await startRogueFederation({
      honest: 3,
      rogues: 0,
      honestOptions: (i) =>
        i === 2
          ? {
              behaviour: {
                transformUpdate: (update) => ({
                  ...update,
                  specs: [{ name: "padding", shape: [oversizedFloats] }],
                  delta: new Float32Array(oversizedFloats),
                }),
              },
            }
          : {},
    });
    const fat = fed.honest[2];
    const result = await fed.coordinator.run();
    expect(result.rounds[0].failureDetails).toEqual([
      { clientId: fat.clientId, reason: "error", code: ErrorCode.PAYLOAD_TOO_LARGE },
    ]);
    // Nothing oversized was sent, so the connection survives.
    expect(fat.socket.connected).toBe(true);
    expect(fed.logs.some((l) => l.includes("PAYLOAD_TOO_LARGE"))).toBe(true);
    expectHonestModel(fed, result, { honest: fed.honest.slice(0, 2) });
  });
});
