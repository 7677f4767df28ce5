import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import {
  chunkNonce,
  createRoundKeyPair,
  ENVELOPE_CHUNK_BYTES,
  type Envelope,
  EnvelopeOpener,
  envelopeSchema,
  sealUpdate,
} from "../common/crypto/envelope.js";
import { generateIdentity } from "../common/crypto/identity.js";
import { ErrorCode } from "../common/errors.js";
import { resignEnvelope as resign } from "./helpers/security.js";

const alice = generateIdentity();
const mallory = generateIdentity();
const update = new Uint8Array(new Float32Array([0.5, -1.25, 3, 1e-7]).buffer);
/** Several chunks at the default size, so the worker threads share the work. */
const large = Uint8Array.from({ length: 3 * ENVELOPE_CHUNK_BYTES + 12_345 }, (_, i) => (i * 7919) & 0xff);

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

function roundSetup(round: number) {
  const keys = createRoundKeyPair();
  const opener = new EnvelopeOpener({ round, secretKey: Uint8Array.from(keys.secretKey) });
  const seal = (plaintext = update, options: { identity?: typeof alice; chunkBytes?: number } = {}) =>
    sealUpdate({
      round,
      serverPublicKey: keys.publicKey,
      identity: options.identity ?? alice,
      plaintext,
      ...(options.chunkBytes !== undefined ? { chunkBytes: options.chunkBytes } : {}),
    });
  return { keys, opener, seal };
}

describe("update envelopes", () => {
  it("round-trips the plaintext, small and split across chunks", async () => {
    const { opener, seal } = roundSetup(7);
    const opened = await opener.open(await seal(), alice.publicKey);
    expect(Array.from(new Float32Array(opened.buffer, opened.byteOffset, opened.length / 4))).toEqual([
      0.5,
      -1.25,
      3,
      Math.fround(1e-7),
    ]);
    const envelope = await seal(large);
    expect(envelope.version).toBe(2);
    expect(envelope.chunks).toHaveLength(4);
    expect(Buffer.from(await opener.open(envelope, alice.publicKey)).equals(Buffer.from(large))).toBe(true);
  });

  it("opens whatever chunk size the sender chose, including one byte per chunk", async () => {
    const { opener, seal } = roundSetup(1);
    for (const chunkBytes of [1, 31, 32, 33, 1000]) {
      const envelope = await seal(update, { chunkBytes });
      expect(envelope.chunks).toHaveLength(Math.ceil((32 + update.length) / chunkBytes));
      expect(Array.from(await opener.open(envelope, alice.publicKey))).toEqual(Array.from(update));
    }
  });

  it("seals each chunk as nacl.secretbox under nacl.box.before, with the nonce || index || count nonce", async () => {
    const { keys, seal } = roundSetup(1);
    const envelope = await seal(large);
    const key = nacl.box.before(envelope.senderBoxPublicKey, keys.secretKey);
    const inner = new Uint8Array([...alice.publicKey, ...large]);
    const n = envelope.chunks.length;
    envelope.chunks.forEach((chunk, i) => {
      const opened = nacl.secretbox.open(chunk, chunkNonce(envelope.nonce, i, n), key);
      const slice = inner.subarray(i * ENVELOPE_CHUNK_BYTES, (i + 1) * ENVELOPE_CHUNK_BYTES);
      expect(opened && Buffer.from(opened).equals(Buffer.from(slice))).toBe(true);
    });
    expect(Array.from(chunkNonce(envelope.nonce, 2, 4).subarray(16))).toEqual([0, 0, 0, 2, 0, 0, 0, 4]);
  });

  it("does not carry the plaintext in the clear", async () => {
    const { seal } = roundSetup(1);
    const plaintext = new TextEncoder().encode("a recognisable plaintext marker");
    const envelope = await seal(plaintext);
    for (const chunk of envelope.chunks)
      expect(Buffer.from(chunk).includes(Buffer.from(plaintext))).toBe(false);
  });

  it("uses a fresh nonce and sender box key per message", async () => {
    const { seal } = roundSetup(1);
    const [a, b] = [await seal(), await seal()];
    expect(a.nonce).not.toEqual(b.nonce);
    expect(a.senderBoxPublicKey).not.toEqual(b.senderBoxPublicKey);
  });

  describe("chunks are bound to their place and their envelope", () => {
    /** Each mutation is refused on the wire (signature), and again when the signer re-signs it. */
    const mutations: [string, (chunks: Uint8Array[], other: Uint8Array[]) => Uint8Array[]][] = [
      [
        "a tampered chunk",
        ([first, ...rest]) => [Uint8Array.from(first, (b, i) => (i === 20 ? b ^ 1 : b)), ...rest],
      ],
      ["two chunks swapped", ([a, b, ...rest]) => [b, a, ...rest]],
      ["the last chunk dropped", (chunks) => chunks.slice(0, -1)],
      ["a middle chunk dropped", ([a, , ...rest]) => [a, ...rest]],
      ["a chunk duplicated in place of another", ([a, , ...rest]) => [a, a, ...rest]],
      ["a chunk duplicated at the end", (chunks) => [...chunks, chunks[chunks.length - 1]]],
      ["a chunk from another envelope", ([a, , ...rest], other) => [a, other[1], ...rest]],
      ["all chunks from another envelope", (_, other) => other],
    ];
    for (const [what, mutate] of mutations) {
      it(`refuses ${what}: BAD_SIGNATURE as sent, DECRYPT_FAILED when its signer re-signs it`, async () => {
        const { opener, seal } = roundSetup(1);
        const envelope = await seal(large);
        const other = await seal(large);
        const mutated = { ...envelope, chunks: mutate(envelope.chunks, other.chunks) };
        expect(await codeOf(opener.open(mutated, alice.publicKey))).toBe(ErrorCode.BAD_SIGNATURE);
        expect(await codeOf(opener.open(resign(mutated, alice), alice.publicKey))).toBe(
          ErrorCode.DECRYPT_FAILED,
        );
      });
    }

    it("refuses chunks opened under another envelope's nonce (a splice of the headers)", async () => {
      const { opener, seal } = roundSetup(1);
      const [a, b] = [await seal(large), await seal(large)];
      const spliced = resign({ ...a, nonce: b.nonce }, alice);
      expect(await codeOf(opener.open(spliced, alice.publicKey))).toBe(ErrorCode.DECRYPT_FAILED);
    });
  });

  it("refuses a forged signature with BAD_SIGNATURE", async () => {
    const { opener, seal } = roundSetup(1);
    expect(await codeOf(opener.open(resign(await seal(), mallory), alice.publicKey))).toBe(
      ErrorCode.BAD_SIGNATURE,
    );
  });

  it("refuses a replayed envelope with REPLAY, also while the first copy is still being opened", async () => {
    const { opener, seal } = roundSetup(1);
    const envelope = await seal(large);
    const [first, second] = await Promise.allSettled([
      opener.open(envelope, alice.publicKey),
      opener.open(envelope, alice.publicKey),
    ]);
    expect(first.status).toBe("fulfilled");
    expect(second.status === "rejected" && (second.reason as { code: string }).code).toBe(ErrorCode.REPLAY);
    expect(await codeOf(opener.open(envelope, alice.publicKey))).toBe(ErrorCode.REPLAY);
  });

  it("does not let a tampered copy that arrives first burn the honest envelope's nonce", async () => {
    const { opener, seal } = roundSetup(1);
    const honest = await seal(large);
    const tampered = { ...honest, chunks: [...honest.chunks].reverse() };
    expect(await codeOf(opener.open(tampered, alice.publicKey))).toBe(ErrorCode.BAD_SIGNATURE);
    expect(Buffer.from(await opener.open(honest, alice.publicKey)).equals(Buffer.from(large))).toBe(true);
  });

  it("does not let another client burn an honest client's nonce by reusing it", async () => {
    const { opener, seal } = roundSetup(1);
    const honest = await seal();
    const own = await seal(update, { identity: mallory });
    const copiedNonce = resign({ ...own, nonce: honest.nonce }, mallory);
    expect(await codeOf(opener.open(copiedNonce, mallory.publicKey))).toBe(ErrorCode.DECRYPT_FAILED);
    expect(Array.from(await opener.open(honest, alice.publicKey))).toEqual(Array.from(update));
  });

  it("refuses an envelope for another round with STALE_ROUND", async () => {
    const { keys } = roundSetup(5);
    const opener = new EnvelopeOpener({ round: 5, secretKey: Uint8Array.from(keys.secretKey) });
    const envelope = await sealUpdate({
      round: 4,
      serverPublicKey: keys.publicKey,
      identity: alice,
      plaintext: update,
    });
    expect(await codeOf(opener.open(envelope, alice.publicKey))).toBe(ErrorCode.STALE_ROUND);
  });

  it("refuses chunks sealed to another key (another round's) with DECRYPT_FAILED", async () => {
    const previous = createRoundKeyPair();
    const { opener } = roundSetup(3);
    const old = await sealUpdate({
      round: 2,
      serverPublicKey: previous.publicKey,
      identity: alice,
      plaintext: large,
    });
    const relabelled = resign({ ...old, round: 3 }, alice);
    expect(await codeOf(opener.open(relabelled, alice.publicKey))).toBe(ErrorCode.DECRYPT_FAILED);
  });

  it("refuses another client's envelope re-signed as its own with BAD_SIGNATURE", async () => {
    const { opener, seal } = roundSetup(1);
    const stolen = resign(await seal(large), mallory);
    expect(await codeOf(opener.open(stolen, mallory.publicKey))).toBe(ErrorCode.BAD_SIGNATURE);
  });

  it("refuses format 1 (one nacl.box, no version) and unknown formats with PROTOCOL_VERSION", async () => {
    const { opener, seal } = roundSetup(1);
    const envelope = await seal();
    const { version: _, chunks, ...header } = envelope;
    const formatOne = { ...header, nonce: new Uint8Array(24), ciphertext: chunks[0] };
    await expect(opener.open(formatOne, alice.publicKey)).rejects.toMatchObject({
      code: ErrorCode.PROTOCOL_VERSION,
      message: /format 1/,
    });
    expect(await codeOf(opener.open({ ...envelope, version: 3 }, alice.publicKey))).toBe(
      ErrorCode.PROTOCOL_VERSION,
    );
    // Not refused as a replay later: the format check comes before the nonce is remembered.
    expect(Array.from(await opener.open(envelope, alice.publicKey))).toEqual(Array.from(update));
  });

  it("refuses envelopes after close() and zeroes the secret key", async () => {
    const keys = createRoundKeyPair();
    const secretKey = Uint8Array.from(keys.secretKey);
    const opener = new EnvelopeOpener({ round: 1, secretKey });
    const envelope = await sealUpdate({
      round: 1,
      serverPublicKey: keys.publicKey,
      identity: alice,
      plaintext: update,
    });
    opener.close();
    expect(secretKey.every((b) => b === 0)).toBe(true);
    expect(await codeOf(opener.open(envelope, alice.publicKey))).toBe(ErrorCode.STALE_ROUND);
  });

  it("refuses an envelope whose round closed while its chunks were being opened with STALE_ROUND", async () => {
    const { opener, seal } = roundSetup(1);
    const opening = opener.open(await seal(large), alice.publicKey);
    opener.close();
    expect(await codeOf(opening)).toBe(ErrorCode.STALE_ROUND);
  });

  it("schema accepts a sealed envelope and names the wrong field of a malformed one", async () => {
    const { opener, seal } = roundSetup(1);
    const envelope: Envelope = await seal();
    expect(envelopeSchema.safeParse(envelope).success).toBe(true);
    const result = envelopeSchema.safeParse({ ...envelope, nonce: envelope.nonce.subarray(0, 15) });
    expect(result.success).toBe(false);
    expect(result.error?.issues[0].path).toEqual(["nonce"]);
    for (const bad of [
      { ...envelope, nonce: new Uint8Array(12) },
      { ...envelope, chunks: [] },
      { ...envelope, chunks: [new Uint8Array(16)] },
      { ...envelope, chunks: "x" },
      // A value that makes zod's own length check throw (found by the live fuzz test).
      { ...envelope, chunks: { length: Object.create(null) } },
      null,
    ]) {
      expect(await codeOf(opener.open(bad, alice.publicKey))).toBe(ErrorCode.BAD_PAYLOAD);
    }
  });
});
