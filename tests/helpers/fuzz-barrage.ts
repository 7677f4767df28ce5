import fc from "fast-check";
import type { Socket } from "socket.io-client";
import type { z } from "zod";
import { signChallenge } from "../../common/crypto/auth.js";
import { encodePublicKey, generateIdentity } from "../../common/crypto/identity.js";
import * as protocol from "../../common/protocol.js";
import { totalSize, validateWeights } from "../../common/weights.js";
import { DEFAULT_MAX_EXAMPLES_PER_CLIENT } from "../../server/client-limits.js";
import { PATIENCE_MS } from "./eventually.js";
import {
  type AckTally,
  applyMutations,
  approxWireBytes,
  asReceived,
  floatBytes,
  hostileNumber,
  hostileValue,
  mutationSteps,
  mutationsOf,
  outcomeOf,
} from "./fuzz.js";
import { craftResult, FAKE_METRICS, RogueClient } from "./rogue.js";

/**
 * The live-coordinator barrage of tests/fuzz-messages.test.ts: what hostile Socket.IO clients
 * send (Shot), how it is fired and tallied, and the handshake and transport-abuse workers.
 */

const nonce = "0123456789abcdef";
const spec = { name: "fc1/kernel", shape: [2, 3] };
const plainUpdate = {
  numExamples: 10,
  delta: { specs: [spec], data: floatBytes(6, (i) => i / 10) },
  metrics: FAKE_METRICS,
};

const BATCH = 200;
/** Persistent sockets stay under the payload limit and Socket.IO's 10-attachment cap. */
export const SAFE_BYTES = 400_000;
/** Socket.IO's parser closes a connection whose packet announces more binary attachments. */
export const MAX_ATTACHMENTS = 10;
const LIVE = { hugeString: 150_000 };
const KNOWN_EVENTS = new Set(["hello", "prove", "fitResult", "fitError"]);
const RESERVED = new Set([
  "connect",
  "connect_error",
  "disconnect",
  "disconnecting",
  "newListener",
  "removeListener",
]);

/** Fields whose values have no primitive form, on every event: once crashed the coordinator. */
export const BOMBS: Shot[] = (["hello", "prove", "fitResult", "fitError"] as const).flatMap((event) =>
  [
    { protocolVersion: 1, token: { length: { toString: 0 } } },
    { round: 1, nonce: { length: { toString: 0, valueOf: 0 } }, code: "X", message: "m" },
    {
      round: 1,
      nonce,
      update: { ...plainUpdate, delta: { specs: { length: { toString: 0 } }, data: new Uint8Array(4) } },
    },
    { signature: { length: { toString: 0 } } },
  ].map((payload) => ({ event, payload, ack: event !== "fitError", legit: false })),
);

export interface Shot {
  event: string;
  payload: unknown;
  ack: boolean;
  /** A message the coordinator may rightly accept; ok:true for anything else is a bug. */
  legit: boolean;
}

function sendable(shot: Shot): boolean {
  try {
    const { bytes: size, binaries } = approxWireBytes(shot.payload);
    return size < SAFE_BYTES && binaries <= MAX_ATTACHMENTS;
  } catch {
    return false;
  }
}

/**
 * A packet with more binary attachments than Socket.IO's parser takes: the coordinator closes the
 * connection without an ack, as docs/PROTOCOL.md §1 says (the parser refuses it before any handler
 * runs). Mutated proofs grow such payloads (seed 1253848512 sent a signature array holding 12).
 */
function overAttachmentCap(payload: unknown): boolean {
  try {
    return approxWireBytes(payload).binaries > MAX_ATTACHMENTS;
  } catch {
    return false;
  }
}

/** safeParse of the value as received, reporting a throw as "throws" instead of failing the generator. */
export function schemaVerdict(schema: z.ZodType, value: unknown): "valid" | "invalid" | "throws" {
  try {
    return schema.safeParse(asReceived(value)).success ? "valid" : "invalid";
  } catch {
    return "throws";
  }
}

const unknownEvent = fc
  .oneof(
    fc.string({ minLength: 1, maxLength: 30 }),
    fc.constantFrom(
      "__proto__",
      "constructor",
      "toString",
      "hasOwnProperty",
      "error",
      "fit",
      "cancel",
      "secagg",
      "shutdown",
      "emit",
    ),
  )
  .filter((name) => !KNOWN_EVENTS.has(name) && !RESERVED.has(name));

/** Weight attacks against a request: NaN/Inf-filled, wrong sizes, wrong specs, stale rounds and nonces. */
function resultAttack(ins: protocol.FitInstructions, rightNonce: boolean): fc.Arbitrary<unknown> {
  const n = totalSize(ins.weights.specs);
  const poison = fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 3e38 * 10);
  const data = fc.oneof(
    fc.tuple(poison, fc.nat(n - 1)).map(([p, at]) => floatBytes(n, (i) => (i === at ? p : 0))),
    poison.map((p) => floatBytes(n, () => p)),
    fc
      .integer({ min: -3, max: 3 })
      .filter((d) => d !== 0)
      .map((d) => floatBytes(Math.max(0, n + d), () => 0)),
    fc.constantFrom(1, 2, 3).map((cut) => new Uint8Array(n * 4 - cut)),
  );
  const specs = fc.oneof(
    fc.constant(ins.weights.specs),
    fc.constant(ins.weights.specs.map((s) => ({ name: s.name, shape: [...s.shape].reverse() }))),
    fc.constant(ins.weights.specs.slice(1)),
    fc.constant([{ name: "x", shape: [n] }]),
  );
  const round = rightNonce
    ? fc.constantFrom(ins.round, ins.round, ins.round + 1, ins.round - 1, 0)
    : fc.nat(10);
  const nonceArb = rightNonce
    ? fc.constant(ins.nonce)
    : fc.oneof(
        fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: 8, maxLength: 64 }),
        fc.constant("0".repeat(24)),
      );
  return fc
    .record({ round, nonce: nonceArb, specs, data, numExamples: fc.oneof(fc.constant(100), hostileNumber) })
    .map((r) => ({
      round: r.round,
      nonce: r.nonce,
      update: { numExamples: r.numExamples, delta: { specs: r.specs, data: r.data }, metrics: FAKE_METRICS },
    }));
}

/** Is `payload` a result the proxy must accept for `ins` (if its request is still open)? */
function isValidResult(payload: unknown, ins: protocol.FitInstructions | null): boolean {
  if (!ins) return false;
  const parsed = (() => {
    try {
      return protocol.fitResultSchema.safeParse(asReceived(payload));
    } catch {
      return null;
    }
  })();
  if (!parsed?.success) return false;
  const m = parsed.data;
  if (m.nonce !== ins.nonce || m.round !== ins.round || !m.update) return false;
  // The round is unprotected (no privacy plugin), so the report is required (common/disclosure.ts).
  if (m.update.numExamples === undefined || m.update.metrics === undefined) return false;
  // The coordinator's default cap (startRogueFederation sets no limits); norms of these deltas are
  // either tiny or not finite.
  if (m.update.numExamples > DEFAULT_MAX_EXAMPLES_PER_CLIENT) return false;
  return (
    outcomeOf(() =>
      validateWeights(
        ins.weights.specs,
        m.update?.delta.specs ?? [],
        m.update?.delta.data ?? new Uint8Array(0),
      ),
    ) === "ok"
  );
}

/** A result for the open request, wrong in one decisive way: poisoned or mis-sized weights, or the round. */
export function weightAttack(ins: protocol.FitInstructions): fc.Arbitrary<Shot> {
  return resultAttack(ins, true).map(
    (payload): Shot => ({ event: "fitResult", payload, ack: true, legit: isValidResult(payload, ins) }),
  );
}

/** Everything a connected socket can throw at the coordinator, given the request it holds (if any). */
export function shots(ins: protocol.FitInstructions | null, admitted: boolean): fc.Arbitrary<Shot> {
  const template = ins ? craftResult(ins) : { round: 1, nonce, update: plainUpdate };
  const fitResult = fc
    .oneof(
      { weight: 2, arbitrary: hostileValue(LIVE) },
      { weight: 3, arbitrary: mutationsOf(template, LIVE).map((m) => m.value) },
      { weight: 3, arbitrary: ins ? resultAttack(ins, true) : hostileValue(LIVE) },
      { weight: 1, arbitrary: ins ? resultAttack(ins, false) : hostileValue(LIVE) },
    )
    .map((payload): Shot => ({ event: "fitResult", payload, ack: true, legit: isValidResult(payload, ins) }));
  const hello = fc
    .oneof(
      hostileValue(LIVE),
      mutationsOf({ protocolVersion: 1, label: "x" }, LIVE).map((m) => m.value),
    )
    // Before hello, a schema-valid hello would admit or disconnect the socket: those go to the handshake workers.
    .filter((payload) => admitted || schemaVerdict(protocol.helloSchema, payload) !== "valid")
    .map((payload): Shot => ({ event: "hello", payload, ack: true, legit: false }));
  const prove = fc
    .oneof(
      hostileValue(LIVE),
      mutationsOf({ signature: new Uint8Array(64) }, LIVE).map((m) => m.value),
    )
    .map((payload): Shot => ({ event: "prove", payload, ack: true, legit: false }));
  const fitError = fc
    .oneof(
      hostileValue(LIVE),
      mutationsOf(
        { round: ins?.round ?? 1, nonce: ins?.nonce ?? nonce, code: "BAD_SHAPE", message: "m" },
        LIVE,
      ).map((m) => m.value),
    )
    .map((payload): Shot => ({ event: "fitError", payload, ack: false, legit: true }));
  const other = fc
    .tuple(unknownEvent, hostileValue(LIVE))
    .map(([event, payload]): Shot => ({ event, payload, ack: false, legit: true }));
  const blob = fc
    .tuple(
      fc.constantFrom("hello", "prove", "fitResult", "fitError", "blob"),
      fc.integer({ min: 0, max: 200_000 }),
    )
    .map(
      ([event, size]): Shot => ({
        event,
        payload: new Uint8Array(size).fill(size & 0xff),
        ack: KNOWN_EVENTS.has(event) && event !== "fitError",
        legit: false,
      }),
    );
  return fc
    .oneof(
      { weight: 10, arbitrary: fitResult },
      { weight: 2, arbitrary: hello },
      { weight: 2, arbitrary: prove },
      { weight: 2, arbitrary: fitError },
      { weight: 2, arbitrary: other },
      { weight: 1, arbitrary: blob },
    )
    .filter(sendable);
}

/** Fires shots at one socket in awaited batches, tallying every reply. */
export async function fire(socket: Socket, list: readonly Shot[], tally: AckTally): Promise<void> {
  for (let i = 0; i < list.length; i += BATCH) {
    await Promise.all(list.slice(i, i + BATCH).map((shot) => fireOne(socket, shot, tally)));
  }
}

export async function fireOne(socket: Socket, shot: Shot, tally: AckTally): Promise<string> {
  tally.countSent(KNOWN_EVENTS.has(shot.event) ? shot.event : "(unknown event)");
  if (!shot.ack) {
    socket.emit(shot.event, shot.payload);
    return "sent";
  }
  try {
    const reply = await socket.timeout(PATIENCE_MS).emitWithAck(shot.event, shot.payload);
    return tally.record(reply, shot.legit, `${shot.event}: ${preview(shot.payload)}`);
  } catch (err) {
    tally.missed(describeMiss(socket, shot.event, shot.payload, err));
    return "noReply";
  }
}

/** What the test reports for an acknowledged message left without a reply. */
function describeMiss(socket: Socket, event: string, payload: unknown, err?: unknown): string {
  const why = err instanceof Error ? err.message : "no reply";
  const state = socket.connected ? "socket connected" : "socket disconnected";
  return `${event} (${why}; ${state}): ${preview(payload, 2000)}`;
}

function preview(value: unknown, max = 200): string {
  try {
    return (
      JSON.stringify(value, (_k, v) => (ArrayBuffer.isView(v) ? `<${v.byteLength} bytes>` : v))?.slice(
        0,
        max,
      ) ?? String(value)
    );
  } catch {
    return String(value);
  }
}

const validHello = { protocolVersion: protocol.PROTOCOL_VERSION, label: "fuzz" };

/**
 * The handshake on fresh connections, one message at a time: schema-valid hellos (wrong versions,
 * odd tokens, real and fake public keys), then forged or genuine proofs for any challenge. A
 * connection that is refused, or admitted, is replaced by a new one.
 */
export async function handshakeWorker(
  url: string,
  iterations: number,
  seed: number,
  tally: AckTally,
): Promise<void> {
  const identity = generateIdentity();
  const helloArb = fc.oneof(
    mutationsOf(validHello, LIVE).map((m) => m.value),
    mutationsOf({ ...validHello, publicKey: encodePublicKey(identity.publicKey) }, LIVE).map((m) => m.value),
    fc.constant({ ...validHello, publicKey: encodePublicKey(identity.publicKey) }),
  );
  const plans = fc.sample(fc.tuple(helloArb, fc.nat(3), mutationSteps(LIVE)), { numRuns: iterations, seed });
  for (const [hello, proofKind, steps] of plans) {
    const verdict = schemaVerdict(protocol.helloSchema, hello);
    const rogue = await RogueClient.connect(url);
    try {
      const legitHello =
        verdict === "valid" && (hello as { protocolVersion?: unknown }).protocolVersion === 1;
      const shot: Shot = { event: "hello", payload: hello, ack: true, legit: legitHello };
      if (!sendable(shot)) continue;
      tally.countSent("hello");
      const reply = (await rogue.socket
        .timeout(PATIENCE_MS)
        .emitWithAck("hello", hello)
        .catch(() => null)) as protocol.Ack<protocol.Welcome> | null;
      if (reply === null) {
        tally.missed(describeMiss(rogue.socket, "hello", hello));
        continue;
      }
      tally.record(reply, legitHello, `hello: ${preview(hello)}`);
      if (!reply.ok || !reply.challenge) continue;
      const challenge = new Uint8Array(reply.challenge);
      const genuine = signChallenge(identity, challenge);
      const claimsOurKey =
        (hello as { publicKey?: unknown }).publicKey === encodePublicKey(identity.publicKey);
      const proofs = [
        { signature: genuine },
        applyMutations({ signature: genuine }, steps, LIVE.hugeString).value,
        { signature: signChallenge(generateIdentity(), challenge) },
        { signature: genuine.subarray(1) },
      ];
      const proof = proofs[proofKind];
      const signature = (proof as { signature?: unknown } | undefined)?.signature;
      const legitProof =
        claimsOurKey &&
        schemaVerdict(protocol.proveSchema, proof) === "valid" &&
        signature instanceof Uint8Array &&
        Buffer.from(signature).equals(Buffer.from(genuine));
      tally.countSent("prove");
      const proved = await Promise.race([
        rogue.socket
          .timeout(PATIENCE_MS)
          .emitWithAck("prove", proof)
          .catch(() => null),
        rogue.disconnected().then(() => null),
      ]);
      if (proved !== null) tally.record(proved, legitProof, `prove: ${preview(proof)}`);
      else if (overAttachmentCap(proof)) tally.closedAsDocumented++;
      else tally.missed(describeMiss(rogue.socket, "prove", proof));
    } finally {
      rogue.close();
    }
  }
}

/** Transport abuse on throwaway connections: oversized packets, too many attachments, raw frames. */
export async function abuseWorker(url: string, limit: number, seed: number, tally: AckTally): Promise<void> {
  const frames = fc.sample(
    fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({ maxLength: 100 }).map((s) => `42${s}`),
      fc.constantFrom(
        '42["hello"',
        '451-["fitResult",{"_placeholder":true,"num":5}]',
        "42[1,2]",
        '42["disconnect"]',
        "4{}",
        "49",
        '42["error",{}]',
        "41",
        '40{"token":1}',
      ),
    ),
    { numRuns: 120, seed },
  );
  const payloads: unknown[] = [
    {
      round: 1,
      nonce,
      update: { ...plainUpdate, delta: { specs: [spec], data: new Uint8Array(limit + 4096) } },
    },
    Array.from({ length: 12 }, () => new Uint8Array(4)),
    "z".repeat(limit + 10),
  ];
  let rogue = await RogueClient.connect(url);
  const probe = async (r: RogueClient) => {
    tally.countSent("hello");
    const reply = await Promise.race([
      r.socket
        .timeout(3000)
        .emitWithAck("hello", "probe")
        .catch(() => null),
      r.disconnected().then(() => null),
    ]);
    if (reply === null) tally.missed(describeMiss(r.socket, "hello", "probe"));
    else tally.record(reply, false, "probe");
  };
  try {
    for (const [i, frame] of frames.entries()) {
      if (!rogue.socket.connected) {
        rogue.close();
        rogue = await RogueClient.connect(url);
      }
      tally.countSent("raw");
      (rogue.socket.io.engine as unknown as { send(data: string): void }).send(frame);
      if (i % 10 === 9) await probe(rogue);
    }
    for (const payload of payloads) {
      rogue.close();
      rogue = await RogueClient.connect(url);
      tally.countSent("fitResult");
      rogue.socket.emit("fitResult", payload, () => tally.record({ ok: true }, false, "oversized"));
      await probe(rogue);
    }
  } finally {
    rogue.close();
  }
}

/** Every ordering of `items` (FedAvg sums in the sampled order, which the test cannot see). */
export function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) =>
    permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest]),
  );
}
