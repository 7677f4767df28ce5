import fc from "fast-check";
import nacl from "tweetnacl";
import { afterAll, describe, expect, it } from "vitest";
import { z } from "zod";
import {
  chunkHash,
  createRoundKeyPair,
  EnvelopeOpener,
  envelopeDigest,
  envelopeSchema,
  sealUpdate,
} from "../common/crypto/envelope.js";
import { generateIdentity } from "../common/crypto/identity.js";
import { SecAggClientSession } from "../common/crypto/secagg/client.js";
import { completeGraph } from "../common/crypto/secagg/graph.js";
import { overWire } from "../common/crypto/secagg/in-memory.js";
import * as secaggMessages from "../common/crypto/secagg/messages.js";
import { SecAggServerSession } from "../common/crypto/secagg/server.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import * as protocol from "../common/protocol.js";
import { FedAvg } from "../common/strategy/fedavg.js";
import { decodePlainUpdate, encodePlainUpdate } from "../common/update-codec.js";
import { totalSize, validateWeights } from "../common/weights.js";
import { fromWire, toWire } from "../common/wire-json.js";
import type { FitSuccess } from "../server/client-proxy.js";
import { toClientUpdate } from "../server/fit-collection.js";
import { eventually } from "./helpers/eventually.js";
import {
  AckTally,
  applyMutations,
  asReceived,
  bitEqual,
  ERROR_CODES,
  FUZZ_SEED,
  floatBytes,
  hostileValue,
  installCrashCounters,
  mutationSteps,
  mutationsOf,
  outcomeOf,
  outcomeOfAsync,
  primitiveBomb,
  trickyKey,
} from "./helpers/fuzz.js";
import {
  abuseWorker,
  BOMBS,
  fire,
  fireOne,
  handshakeWorker,
  permutations,
  SAFE_BYTES,
  type Shot,
  schemaVerdict,
  shots,
  weightAttack,
} from "./helpers/fuzz-barrage.js";
import {
  craftResult,
  RogueClient,
  type RogueFederation,
  startRogueFederation,
  successesOf,
} from "./helpers/rogue.js";

fc.configureGlobal({ seed: FUZZ_SEED });
afterAll(() => console.log(`fuzz-messages: seed ${FUZZ_SEED} (FUZZ_SEED=${FUZZ_SEED} reproduces it)`));

const spec = { name: "fc1/kernel", shape: [2, 3] };
const weights = { specs: [spec], data: floatBytes(6, (i) => i / 10) };
const metrics = { loss: 1, accuracy: 0.5, steps: 3, epochsCompleted: 1, seconds: 0.1 };
const plainUpdate = { numExamples: 10, delta: weights, metrics, clippedBit: 1 as const };
const nonce = "0123456789abcdef";
const bytes = (n: number, fill = 7) => new Uint8Array(n).fill(fill);
const shareBox = { from: "a", to: "b", nonce: bytes(24), ciphertext: bytes(100) };
const revealed = { owner: "a", share: bytes(33) };

/** Every wire schema with one valid message to mutate. */
const SCHEMAS: [string, z.ZodType, unknown][] = [
  ["bytes", protocol.bytesSchema, bytes(4)],
  ["tensorSpec", protocol.tensorSpecSchema, spec],
  ["wireWeights", protocol.wireWeightsSchema, weights],
  [
    "hello",
    protocol.helloSchema,
    {
      protocolVersion: 1,
      publicKey: "AAAA",
      token: "t0ken",
      label: "x",
      capabilities: { envelope: true, secagg: false },
    },
  ],
  ["prove", protocol.proveSchema, { signature: bytes(64) }],
  ["modelDescriptor", protocol.modelDescriptorSchema, { topology: { layers: [] }, specs: [spec] }],
  [
    "fitConfig",
    protocol.fitConfigSchema,
    { epochs: 1, batchSize: 10, learningRate: 0.1, proximalMu: 0.01, maxSteps: 4 },
  ],
  ["dpClientConfig", protocol.dpClientConfigSchema, { clipNorm: 1, noiseStd: 0, reportClippedBit: true }],
  [
    "fitInstructions",
    protocol.fitInstructionsSchema,
    {
      round: 1,
      nonce,
      deadlineMs: 1000,
      config: { epochs: 1, batchSize: 10, learningRate: 0.1 },
      weights,
      frozen: weights,
      dp: { clipNorm: 1, noiseStd: 0.1, reportClippedBit: false },
      envelopeKey: bytes(32),
      secagg: { clipRange: 1, scale: 1000, weighted: true, maxWeight: 100 },
    },
  ],
  ["trainMetrics", protocol.trainMetricsSchema, metrics],
  ["plainUpdate", protocol.plainUpdateSchema, plainUpdate],
  [
    "envelopeWire",
    protocol.envelopeWireSchema,
    {
      version: 2,
      round: 1,
      nonce: bytes(16),
      senderBoxPublicKey: bytes(32),
      chunks: [bytes(80), bytes(40)],
      signature: bytes(64),
    },
  ],
  [
    "envelope",
    envelopeSchema,
    {
      version: 2,
      round: 1,
      nonce: bytes(16),
      senderBoxPublicKey: bytes(32),
      chunks: [bytes(80), bytes(40)],
      signature: bytes(64),
    },
  ],
  [
    "fitResult",
    protocol.fitResultSchema,
    {
      round: 1,
      nonce,
      update: plainUpdate,
      secagg: { masked: { round: 1, clientId: "a", masked: bytes(8) }, metrics },
    },
  ],
  ["fitError", protocol.fitErrorSchema, { round: 1, nonce, code: "BAD_SHAPE", message: "no" }],
  ["secagg.clientId", secaggMessages.clientIdSchema, "a"],
  [
    "secagg.publicKeys",
    secaggMessages.publicKeysSchema,
    { clientId: "a", cPublicKey: bytes(32), sPublicKey: bytes(32) },
  ],
  [
    "secagg.advertiseKeys",
    secaggMessages.advertiseKeysSchema,
    { round: 1, clientId: "a", cPublicKey: bytes(32), sPublicKey: bytes(32) },
  ],
  [
    "secagg.neighbourKeys",
    secaggMessages.neighbourKeysSchema,
    {
      round: 1,
      recipient: "a",
      threshold: 2,
      neighbours: [{ clientId: "b", cPublicKey: bytes(32), sPublicKey: bytes(32) }],
    },
  ],
  ["secagg.encryptedShare", secaggMessages.encryptedShareSchema, shareBox],
  ["secagg.shareKeys", secaggMessages.shareKeysSchema, { round: 1, clientId: "a", shares: [shareBox] }],
  [
    "secagg.routedShares",
    secaggMessages.routedSharesSchema,
    { round: 1, recipient: "b", shares: [shareBox] },
  ],
  ["secagg.maskedInput", secaggMessages.maskedInputSchema, { round: 1, clientId: "a", masked: bytes(8) }],
  [
    "secagg.unmaskRequest",
    secaggMessages.unmaskRequestSchema,
    { round: 1, recipient: "a", dropped: ["c"], survived: ["a", "b"] },
  ],
  ["secagg.revealedShare", secaggMessages.revealedShareSchema, revealed],
  [
    "secagg.unmaskResponse",
    secaggMessages.unmaskResponseSchema,
    { round: 1, clientId: "a", seedShares: [revealed], secretKeyShares: [revealed] },
  ],
];

/** safeParseUntrusted never throws; a failure is a ZodError with one "path: message" line per issue. */
function checkSchema(schema: z.ZodType, value: unknown): void {
  const result = protocol.safeParseUntrusted(schema, value);
  if (result.success) {
    expect(protocol.safeParseUntrusted(schema, result.data).success).toBe(true);
  } else {
    expect(result.error).toBeInstanceOf(z.ZodError);
    expect(result.error.issues.length).toBeGreaterThan(0);
    for (const line of protocol.formatZodIssues(result.error)) expect(line).toMatch(/^\S+: /);
  }
}

describe("fuzzing the pure message handlers", () => {
  for (const [name, schema, valid] of SCHEMAS) {
    it(`schema ${name}: safeParseUntrusted never throws on anything or on mutations of a valid message`, () => {
      expect(schema.safeParse(valid).success).toBe(true);
      fc.assert(
        fc.property(hostileValue({ hugeString: 5000 }), (value) => checkSchema(schema, value)),
        { numRuns: 150 },
      );
      fc.assert(
        fc.property(mutationsOf(valid, { hugeString: 5000 }), ({ value }) => checkSchema(schema, value)),
        { numRuns: 250 },
      );
      // Every field replaced by each value that has no primitive form (zod compares their length).
      for (const bomb of fc.sample(primitiveBomb, { numRuns: 30, seed: 1 })) {
        checkSchema(schema, bomb);
        const fields =
          valid !== null && typeof valid === "object" && !ArrayBuffer.isView(valid) ? Object.keys(valid) : [];
        for (const key of fields) checkSchema(schema, { ...(valid as object), [key]: bomb });
      }
    });
  }

  it("the oracle judges a message as the coordinator receives it: boxed values unbox, binaries stay binary", () => {
    // A boxed label is invalid locally but arrives as a plain string: a valid hello. Judging the
    // local value once let such a hello count as "garbage accepted".
    const boxed = { protocolVersion: new Number(1), label: new String("x"), token: undefined };
    expect(protocol.helloSchema.safeParse(boxed).success).toBe(false);
    expect(schemaVerdict(protocol.helloSchema, boxed)).toBe("valid");
    const received = asReceived({ signature: new Uint8Array([1, 2, 3]), nested: [Buffer.from([4])] }) as {
      signature: Buffer;
      nested: Buffer[];
    };
    expect(Buffer.isBuffer(received.signature) && [...received.signature]).toEqual([1, 2, 3]);
    expect(Buffer.isBuffer(received.nested[0]) && [...received.nested[0]]).toEqual([4]);
    expect(schemaVerdict(protocol.proveSchema, { signature: new Uint8Array(64) })).toBe("valid");
    expect(schemaVerdict(protocol.helloSchema, { protocolVersion: 1, label: new Uint8Array(2) })).toBe(
      "invalid",
    );
  });

  it("secagg parseMessage turns every schema failure into BAD_PAYLOAD with one line per issue", () => {
    const valid = SCHEMAS.find(([n]) => n === "secagg.shareKeys")?.[2];
    fc.assert(
      fc.property(
        fc.oneof(
          hostileValue(),
          mutationsOf(valid).map((m) => m.value),
        ),
        (value) => {
          try {
            secaggMessages.parseMessage(secaggMessages.shareKeysSchema, value, "ShareKeys");
          } catch (err) {
            expect(err).toBeInstanceOf(FedsimError);
            expect((err as FedsimError).code).toBe(ErrorCode.BAD_PAYLOAD);
            expect((err as FedsimError).details.length).toBeGreaterThan(0);
          }
        },
      ),
      { numRuns: 400 },
    );
  });

  it("decodePlainUpdate: arbitrary bytes, at any offset, decode or fail with BAD_PAYLOAD only", () => {
    const framed = fc
      .tuple(
        fc.oneof(
          fc.jsonValue(),
          mutationsOf({ ...plainUpdate, delta: undefined, specs: [spec] }, { hugeString: 5000 }).map(
            (m) => m.value,
          ),
        ),
        fc.uint8Array({ maxLength: 64 }),
        fc.nat(1_100_000),
      )
      .map(([header, data, lengthField]) => {
        const json = new TextEncoder().encode(JSON.stringify(header) ?? "");
        const out = new Uint8Array(4 + json.length + data.length);
        new DataView(out.buffer).setUint32(0, lengthField % 3 === 0 ? lengthField : json.length, true);
        out.set(json, 4);
        out.set(data, 4 + json.length);
        return out;
      });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), framed), fc.nat(3), (raw, offset) => {
        const shifted = new Uint8Array(raw.length + offset).subarray(offset);
        shifted.set(raw);
        const code = outcomeOf(() => decodePlainUpdate(shifted), [ErrorCode.BAD_PAYLOAD]);
        if (code === "ok")
          expect(protocol.plainUpdateSchema.safeParse(decodePlainUpdate(shifted)).success).toBe(true);
      }),
      { numRuns: 2000 },
    );
    // And the codec round-trips a real update (so the property above is not vacuous).
    const decoded = decodePlainUpdate(encodePlainUpdate(plainUpdate));
    expect(decoded.numExamples).toBe(10);
    expect(Array.from(decoded.delta.data)).toEqual(Array.from(weights.data));
  });

  it("fromWire never throws, bounds depth, and inverts toWire on JSON values with binaries", () => {
    const nested = fc.integer({ min: 1, max: 20_000 }).map((depth) => {
      let v: unknown = { $b64: "AAAA" };
      for (let i = 0; i < depth; i++) v = i % 2 === 0 ? [v] : { k: v };
      return v;
    });
    fc.assert(
      fc.property(fc.oneof(hostileValue({ maxDepth: 6 }), nested), (value) => {
        const out = fromWire(value);
        expect(depthOf(out)).toBeLessThanOrEqual(34);
      }),
      { numRuns: 1000 },
    );
    const wireable = fc.letrec((tie) => ({
      v: fc.oneof(
        { depthSize: "small", maxDepth: 5 },
        fc.jsonValue({ maxDepth: 1 }),
        fc.uint8Array({ maxLength: 16 }),
        fc.array(tie("v"), { maxLength: 4 }),
        fc.dictionary(
          fc.oneof(fc.string(), trickyKey).filter((k) => k !== "$b64"),
          tie("v"),
          { maxKeys: 4, noNullPrototype: true },
        ),
      ),
    })).v;
    fc.assert(
      fc.property(wireable, (value) => {
        expect(sameTree(fromWire(JSON.parse(JSON.stringify(toWire(value)))), value)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it("validateWeights refuses only with BAD_SHAPE or NON_FINITE, and accepts exactly the right weights", () => {
    const specs = fc.array(
      fc.record({
        name: fc.constantFrom("a", "b", "a/kernel"),
        shape: fc.array(fc.nat(4), { maxLength: 3 }),
      }),
      { maxLength: 3 },
    );
    const special = fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY);
    fc.assert(
      fc.property(
        specs,
        fc.boolean(),
        specs,
        fc.constantFrom(-1, 0, 0, 0, 1),
        fc.option(special),
        fc.nat(3),
        (expected, same, other, skew, bad, offset) => {
          const actual = same ? expected : other;
          const n = Math.max(0, totalSize(expected) + skew);
          const raw = floatBytes(n, (i) => (bad !== null && i === n - 1 ? bad : i));
          const shifted = new Uint8Array(raw.length + offset).subarray(offset);
          shifted.set(raw);
          const code = outcomeOf(
            () => validateWeights(expected, actual, shifted),
            [ErrorCode.BAD_SHAPE, ErrorCode.NON_FINITE],
          );
          const specsMatch = JSON.stringify(expected) === JSON.stringify(actual);
          const rightLength = n === totalSize(expected);
          const finite = bad === null || n === 0;
          expect(code === "ok").toBe(specsMatch && rightLength && finite);
          if (!specsMatch || !rightLength) expect(code).toBe(ErrorCode.BAD_SHAPE);
          else if (!finite) expect(code).toBe(ErrorCode.NON_FINITE);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("EnvelopeOpener.open refuses every mutated envelope with a typed code and opens only the genuine one", async () => {
    const identity = generateIdentity();
    const stranger = generateIdentity();
    const round = 3;
    const keys = createRoundKeyPair();
    const plaintext = encodePlainUpdate(plainUpdate);
    // Small chunks, so mutations can reorder, drop and duplicate them.
    const sealed = await sealUpdate({
      round,
      serverPublicKey: keys.publicKey,
      identity,
      plaintext,
      chunkBytes: 64,
    });
    /** Re-signs whatever the mutation left, so the checks after the signature get exercised too. */
    const resign = (env: Record<string, unknown>) => {
      const { nonce, senderBoxPublicKey, chunks } = env;
      if (!(nonce instanceof Uint8Array) || !(senderBoxPublicKey instanceof Uint8Array)) return env;
      if (!Array.isArray(chunks) || !chunks.every((c) => c instanceof Uint8Array)) return env;
      if (!Number.isInteger(env.round)) return env;
      const r = env.round as number;
      if (r < 0 || r > 0xffff_ffff) return env;
      const digest = envelopeDigest({ round: r, nonce, senderBoxPublicKey }, chunks.map(chunkHash));
      return { ...env, signature: nacl.sign.detached(digest, identity.secretKey) };
    };
    const signers = [identity.publicKey, stranger.publicKey, bytes(31), bytes(32)];
    await fc.assert(
      fc.asyncProperty(
        mutationsOf(sealed, { hugeString: 2000 }),
        fc.boolean(),
        fc.nat(3),
        async ({ value }, resignIt, who) => {
          const opener = new EnvelopeOpener({ round, secretKey: keys.secretKey.slice() });
          const envelope =
            resignIt && value && typeof value === "object" ? resign(value as Record<string, unknown>) : value;
          let opened: Uint8Array | undefined;
          const code = await outcomeOfAsync(async () => {
            opened = await opener.open(envelope, signers[who]);
          });
          if (code === "ok") {
            expect(who).toBe(0);
            expect(Buffer.from(opened ?? []).equals(Buffer.from(plaintext))).toBe(true);
            // The same envelope again is a replay.
            expect(await outcomeOfAsync(() => opener.open(envelope, signers[who]))).toBe(ErrorCode.REPLAY);
          }
        },
      ),
      { numRuns: 600 },
    );
    // Another identity's sealed update, signed by this one: the sender binding refuses it.
    const foreign = await sealUpdate({
      round,
      serverPublicKey: keys.publicKey,
      identity: stranger,
      plaintext,
    });
    const opener = new EnvelopeOpener({ round, secretKey: keys.secretKey.slice() });
    expect(await outcomeOfAsync(() => opener.open(resign({ ...foreign }), identity.publicKey))).toBe(
      ErrorCode.BAD_SIGNATURE,
    );
  });

  it("SecAgg server receive*: mutated and misaddressed messages are refused with typed codes; the sum stays exact", async () => {
    const ids = ["a", "b", "c"];
    let exactRuns = 0;
    const injection = fc.record({
      stage: fc.nat(3),
      before: fc.boolean(),
      sender: fc.constantFrom("a", "b", "c", "mallory"),
      steps: mutationSteps({ hugeString: 2000 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(injection, { maxLength: 6 }), fc.nat(), async (injections, seed) => {
        const round = 5;
        const server = new SecAggServerSession({
          round,
          clientIds: ids,
          graph: completeGraph(ids),
          threshold: 2,
        });
        const clients = new Map(ids.map((id) => [id, new SecAggClientSession({ clientId: id, round })]));
        const inputs = new Map(
          ids.map((id, k) => [
            id,
            Uint32Array.from({ length: 8 }, (_, i) => (seed * (k + 3) + i * 977) >>> 0),
          ]),
        );
        const receive = [
          (from: string, m: unknown) => server.receiveAdvertiseKeys(from, m as never),
          (from: string, m: unknown) => server.receiveShareKeys(from, m as never),
          (from: string, m: unknown) => server.receiveMaskedInput(from, m as never),
          (from: string, m: unknown) => server.receiveUnmaskResponse(from, m as never),
        ];
        let tainted = false;
        const honestOk: boolean[] = [];
        const deliver = async (stage: number, id: string, message: unknown) => {
          for (const inj of injections.filter((x) => x.stage === stage && x.before)) {
            const forged = applyMutations(overWire(message), inj.steps, 2000).value;
            if (outcomeOf(() => receive[stage](inj.sender, forged)) === "ok") tainted = true;
          }
          honestOk.push(outcomeOf(() => receive[stage](id, overWire(message))) === "ok");
          for (const inj of injections.filter((x) => x.stage === stage && !x.before)) {
            const forged = applyMutations(overWire(message), inj.steps, 2000).value;
            if (outcomeOf(() => receive[stage](inj.sender, forged)) === "ok") tainted = true;
          }
        };
        const step = async <T>(fn: () => T | Promise<T>): Promise<T | undefined> => {
          let out: T | undefined;
          const code = await outcomeOfAsync(async () => {
            out = await fn();
          });
          if (code !== "ok") honestOk.push(false);
          return out;
        };
        for (const [id, c] of clients) await deliver(0, id, c.advertiseKeys());
        const keys = (await step(() => server.neighbourKeys())) ?? {};
        for (const [id, m] of Object.entries(keys)) {
          const reply = await step(() => clients.get(id)?.shareKeys(overWire(m)));
          if (reply) await deliver(1, id, reply);
        }
        const routed = (await step(() => server.routeShares())) ?? {};
        for (const [id, m] of Object.entries(routed)) {
          const reply = await step(() =>
            clients.get(id)?.maskedInput(overWire(m), inputs.get(id) ?? new Uint32Array(8)),
          );
          if (reply) await deliver(2, id, reply);
        }
        const requests = (await step(() => server.unmaskRequests())) ?? {};
        for (const [id, m] of Object.entries(requests)) {
          const reply = await step(() => clients.get(id)?.unmask(overWire(m)));
          if (reply) await deliver(3, id, reply);
        }
        const sum = await step(() => server.unmask());
        for (const c of clients.values()) c.close();
        server.close();
        if (tainted) return;
        // Nothing forged was accepted: the honest run must be untouched by the refusals.
        expect(honestOk.every(Boolean)).toBe(true);
        const expected = new Uint32Array(8);
        for (const v of inputs.values()) for (let i = 0; i < 8; i++) expected[i] = (expected[i] + v[i]) >>> 0;
        expect(Array.from(sum ?? [])).toEqual(Array.from(expected));
        exactRuns++;
      }),
      { numRuns: 40 },
    );
    expect(exactRuns).toBeGreaterThan(5);
  });
});

/** Deep equality by own keys; a decoded object must also be a plain Object (prototype intact). */
function sameTree(actual: unknown, expected: unknown): boolean {
  if (expected instanceof Uint8Array) {
    return actual instanceof Uint8Array && Buffer.from(actual).equals(Buffer.from(expected));
  }
  if (Array.isArray(expected)) {
    return (
      Array.isArray(actual) &&
      actual.length === expected.length &&
      expected.every((v, i) => sameTree(actual[i], v))
    );
  }
  if (expected !== null && typeof expected === "object") {
    if (actual === null || typeof actual !== "object" || Object.getPrototypeOf(actual) !== Object.prototype)
      return false;
    const keys = Object.keys(expected);
    const a = actual as Record<string, unknown>;
    const e = expected as Record<string, unknown>;
    return (
      Object.keys(a).length === keys.length && keys.every((k) => Object.hasOwn(a, k) && sameTree(a[k], e[k]))
    );
  }
  // JSON has no -0: it arrives as 0.
  return Object.is(actual, expected) || (actual === 0 && expected === 0);
}

function depthOf(value: unknown, depth = 0): number {
  if (depth > 100 || value === null || typeof value !== "object" || ArrayBuffer.isView(value)) return depth;
  let max = depth;
  for (const v of Object.values(value)) max = Math.max(max, depthOf(v, depth + 1));
  return max;
}

const ROGUES = 4;
const ROUNDS = 3;
/** The coordinator's strategy; the test recomputes each aggregate with a fresh copy. */
const STRATEGY = { fitConfig: { epochs: 1, batchSize: 10, learningRate: 0.1 }, minFitClients: 1 };

describe("fuzzing a live coordinator over Socket.IO", () => {
  it("takes ≥10,000 hostile messages with typed refusals only, no crash, and a model moved only by accepted updates", async () => {
    const crashes = installCrashCounters();
    const tally = new AckTally();
    /** Replies on the connections the abuse worker breaks on purpose: no reply is expected there. */
    const abuse = new AckTally();
    const before = new Map<number, Float32Array>();
    const after = new Map<number, Float32Array>();
    const successesByRound = new Map<number, FitSuccess[]>();
    let fed: RogueFederation | undefined;
    let seen = 0;
    const snapshot = () => fed?.coordinator.loop.globalWeights.values.slice() ?? new Float32Array(0);
    try {
      fed = await startRogueFederation({
        honest: 2,
        rogues: ROGUES,
        coordinator: {
          rounds: ROUNDS,
          strategy: new FedAvg(STRATEGY),
          // The strangers never say hello yet must stay connected to the end, however long a
          // loaded machine takes over the barrage: no hello timeout may cut them off first.
          helloTimeoutMs: 24 * 3600 * 1000,
          // Every rogue answers each of its requests, so no deadline needs to pass; the honest
          // clients train beside the barrage, which can hold them past the default deadline, and a
          // late honest reply would be refused (STALE_ROUND) where the tally does not see it.
          deadlineMs: 600_000,
          onPhase: (round, phase) => {
            if (phase === "CONFIGURE_FIT") before.set(round, snapshot());
          },
          onRound: (record) => {
            after.set(record.round, snapshot());
            successesByRound.set(record.round, successesOf(fed?.outcomes.slice(seen) ?? []));
            seen = fed?.outcomes.length ?? 0;
          },
        },
      });
      const f = fed;
      const url = f.coordinator.url;
      const rogues = await Promise.all(Array.from({ length: ROGUES }, () => f.admitRogue()));
      const strangers = await Promise.all([RogueClient.connect(url), RogueClient.connect(url)]);
      const limit = rogues[0].welcome?.maxPayloadBytes ?? 0;
      expect(limit).toBeGreaterThan(SAFE_BYTES);
      const initial = snapshot();
      expect(bitEqual(initial, f.initial.values)).toBe(true);

      // Phase 1: no round is collecting. Nothing may touch the model.
      const sample = (arb: fc.Arbitrary<Shot>, n: number, salt: number) =>
        fc.sample(arb, { numRuns: n, seed: FUZZ_SEED + salt });
      await Promise.all([
        ...rogues.map((r, i) => fire(r.socket, [...BOMBS, ...sample(shots(null, true), 900, i)], tally)),
        ...strangers.map((s, i) =>
          fire(s.socket, [...BOMBS, ...sample(shots(null, false), 1100, 10 + i)], tally),
        ),
        ...[0, 1, 2].map((i) => handshakeWorker(url, 100, FUZZ_SEED + 20 + i, tally)),
        abuseWorker(url, limit, FUZZ_SEED + 30, abuse),
      ]);
      expect(bitEqual(snapshot(), initial)).toBe(true);
      // Fail fast: a handler that threw has already left acks unanswered.
      expect(crashes.uncaught).toEqual([]);
      // Wait for the throwaway connections to be gone, so rounds sample only the honest clients and rogues.
      await eventually(() => expect(f.coordinator.sockets.count()).toBe(2 + ROGUES));

      // Phase 2: rounds run; every rogue answers each of its fit requests with a barrage.
      const legitAccepted = new Map<number, Set<string>>();
      const rogueRounds = async (rogue: RogueClient, index: number) => {
        for (let round = 1; round <= ROUNDS; round++) {
          const ins = await rogue.nextFit();
          if (index === 0 && round === 1) {
            // One valid update, accepted once; every replay of it must be refused.
            const valid = craftResult(ins, new Float32Array(totalSize(ins.weights.specs)), 7);
            expect(
              await fireOne(
                rogue.socket,
                { event: "fitResult", payload: valid, ack: true, legit: true },
                tally,
              ),
            ).toBe("ok");
            legitAccepted.set(ins.round, new Set([rogue.clientId]));
            const replays = Array.from(
              { length: 200 },
              (): Shot => ({ event: "fitResult", payload: valid, ack: true, legit: false }),
            );
            await fire(rogue.socket, replays, tally);
          }
          if (index === 1 && round === 2) {
            // A client-reported error with a code that is not an ErrorCode.
            await fireOne(
              rogue.socket,
              {
                event: "fitError",
                payload: { round: ins.round, nonce: ins.nonce, code: "NOT_A_CODE", message: "x" },
                ack: false,
                legit: true,
              },
              tally,
            );
          }
          // The first shot meets the open request (poisoned weights, wrong shape or round); the rest
          // find it already answered.
          const salt = 100 + index * 10 + round;
          const list = [
            ...fc.sample(weightAttack(ins), { numRuns: 1, seed: FUZZ_SEED + salt }),
            ...sample(shots(ins, true), 330, salt),
          ];
          const last: Shot = {
            event: "fitResult",
            payload: { round: ins.round, nonce: ins.nonce },
            ack: true,
            legit: false,
          };
          await fire(rogue.socket, [...list, last], tally);
          for (const shot of list) {
            if (shot.legit && shot.event === "fitResult")
              legitAccepted.set(
                ins.round,
                new Set([...(legitAccepted.get(ins.round) ?? []), rogue.clientId]),
              );
          }
        }
      };
      const run = f.coordinator.run();
      await Promise.all([
        ...rogues.map((r, i) => rogueRounds(r, i)),
        ...strangers.map((s, i) => fire(s.socket, sample(shots(null, false), 600, 40 + i), tally)),
      ]);
      const result = await run;
      for (const s of strangers) s.close();

      const summary = {
        seed: FUZZ_SEED,
        totalSent: tally.sent + abuse.sent,
        ...tally.summary(),
        abuse: abuse.summary(),
        uncaught: crashes.uncaught.length,
        unhandled: crashes.unhandled.length,
      };
      console.log(`live coordinator fuzz: ${JSON.stringify(summary)}`);
      expect(crashes.uncaught).toEqual([]);
      expect(crashes.unhandled).toEqual([]);
      expect(tally.sent + abuse.sent).toBeGreaterThanOrEqual(10_000);
      expect([...tally.untyped, ...abuse.untyped]).toEqual([]);
      expect([...tally.garbageAccepted, ...abuse.garbageAccepted]).toEqual([]);
      // Every message with an ack was answered (the abuse worker's connections are dropped on purpose).
      expect(tally.unanswered).toEqual([]);
      // The coordinator's refusal counters match the refusals the clients received, code for code.
      const refused = new Map(tally.byCode);
      for (const [code, n] of abuse.byCode) refused.set(code, (refused.get(code) ?? 0) + n);
      expect(Object.fromEntries([...f.coordinator.sockets.refusals].sort())).toEqual(
        Object.fromEntries([...refused].sort()),
      );

      // Every round completed with both honest clients; failures carry typed codes.
      expect(result.rounds).toHaveLength(ROUNDS);
      const honestIds = f.honest.map((c) => c.clientId);
      for (const record of result.rounds) {
        expect(record.kept).toBeUndefined();
        for (const d of record.failureDetails) expect(ERROR_CODES.has(d.code)).toBe(true);
        const successes = successesByRound.get(record.round) ?? [];
        for (const id of honestIds) expect(successes.map((s) => s.clientId)).toContain(id);
        for (const s of successes.filter((x) => !honestIds.includes(x.clientId))) {
          expect(legitAccepted.get(record.round)?.has(s.clientId)).toBe(true);
        }
        // Bit for bit: the new model is FedAvg over exactly the accepted updates.
        const start = before.get(record.round) ?? new Float32Array(0);
        const end = after.get(record.round) ?? new Float32Array(0);
        expect(bitEqual(start, end)).toBe(false);
        const candidates = permutations(successes).map(
          (order) =>
            new FedAvg(STRATEGY).aggregateFit(
              record.round,
              start,
              f.initial.specs,
              { kind: "individual", updates: order.map(toClientUpdate) },
              [],
            ).weights,
        );
        expect(candidates.some((c) => c !== null && bitEqual(c, end))).toBe(true);
      }
      // Round 1 started from the untouched initial model; nothing moved it after the last round.
      expect(bitEqual(before.get(1) ?? new Float32Array(0), initial)).toBe(true);
      expect(bitEqual(snapshot(), after.get(ROUNDS) ?? new Float32Array(0))).toBe(true);
    } finally {
      crashes.dispose();
      await fed?.close();
    }
    // Over ten thousand acked messages and three rounds: minutes when other processes hold both cores.
  }, 600_000);
});
