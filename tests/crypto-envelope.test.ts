import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import {
  createRoundKeyPair,
  type Envelope,
  EnvelopeOpener,
  envelopeDigest,
  envelopeSchema,
  sealUpdate,
} from "../common/crypto/envelope.js";
import { generateIdentity, type Identity } from "../common/crypto/identity.js";
import { ErrorCode } from "../common/errors.js";

const alice = generateIdentity();
const mallory = generateIdentity();
const update = new Uint8Array(new Float32Array([0.5, -1.25, 3, 1e-7]).buffer);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

function resign(envelope: Envelope, signer: Identity): Envelope {
  const digest = envelopeDigest(
    envelope.round,
    envelope.nonce,
    envelope.senderBoxPublicKey,
    envelope.ciphertext,
  );
  return { ...envelope, signature: nacl.sign.detached(digest, signer.secretKey) };
}

function roundSetup(round: number) {
  const keys = createRoundKeyPair();
  const opener = new EnvelopeOpener({ round, secretKey: Uint8Array.from(keys.secretKey) });
  return { keys, opener };
}

describe("update envelopes", () => {
  it("round-trips the plaintext", () => {
    const { keys, opener } = roundSetup(7);
    const envelope = sealUpdate({
      round: 7,
      serverPublicKey: keys.publicKey,
      identity: alice,
      plaintext: update,
    });
    const opened = opener.open(envelope, alice.publicKey);
    expect(Array.from(opened)).toEqual(Array.from(update));
    expect(Array.from(new Float32Array(opened.buffer, opened.byteOffset, opened.length / 4))).toEqual([
      0.5,
      -1.25,
      3,
      Math.fround(1e-7),
    ]);
  });

  it("does not carry the plaintext in the clear", () => {
    const keys = createRoundKeyPair();
    const plaintext = new TextEncoder().encode("a recognisable plaintext marker");
    const envelope = sealUpdate({ round: 1, serverPublicKey: keys.publicKey, identity: alice, plaintext });
    expect(Buffer.from(envelope.ciphertext).includes(Buffer.from(plaintext))).toBe(false);
  });

  it("uses a fresh nonce and sender box key per message", () => {
    const keys = createRoundKeyPair();
    const a = sealUpdate({ round: 1, serverPublicKey: keys.publicKey, identity: alice, plaintext: update });
    const b = sealUpdate({ round: 1, serverPublicKey: keys.publicKey, identity: alice, plaintext: update });
    expect(a.nonce).not.toEqual(b.nonce);
    expect(a.senderBoxPublicKey).not.toEqual(b.senderBoxPublicKey);
  });

  it("refuses a forged signature with BAD_SIGNATURE", () => {
    const { keys, opener } = roundSetup(1);
    const envelope = sealUpdate({
      round: 1,
      serverPublicKey: keys.publicKey,
      identity: alice,
      plaintext: update,
    });
    const forged = resign(envelope, mallory);
    expect(codeOf(() => opener.open(forged, alice.publicKey))).toBe(ErrorCode.BAD_SIGNATURE);
  });

  it("refuses a replayed envelope with REPLAY", () => {
    const { keys, opener } = roundSetup(1);
    const envelope = sealUpdate({
      round: 1,
      serverPublicKey: keys.publicKey,
      identity: alice,
      plaintext: update,
    });
    opener.open(envelope, alice.publicKey);
    expect(codeOf(() => opener.open(envelope, alice.publicKey))).toBe(ErrorCode.REPLAY);
  });

  it("does not let a tampered copy that arrives first burn the honest envelope's nonce", () => {
    const { keys, opener } = roundSetup(1);
    const honest = sealUpdate({
      round: 1,
      serverPublicKey: keys.publicKey,
      identity: alice,
      plaintext: update,
    });
    const tampered = { ...honest, ciphertext: Uint8Array.from(honest.ciphertext).reverse() };
    expect(codeOf(() => opener.open(tampered, alice.publicKey))).toBe(ErrorCode.BAD_SIGNATURE);
    expect(Array.from(opener.open(honest, alice.publicKey))).toEqual(Array.from(update));
  });

  it("does not let another client burn an honest client's nonce by reusing it", () => {
    const { keys, opener } = roundSetup(1);
    const honest = sealUpdate({
      round: 1,
      serverPublicKey: keys.publicKey,
      identity: alice,
      plaintext: update,
    });
    const own = sealUpdate({
      round: 1,
      serverPublicKey: keys.publicKey,
      identity: mallory,
      plaintext: update,
    });
    const copiedNonce = resign({ ...own, nonce: honest.nonce }, mallory);
    expect(codeOf(() => opener.open(copiedNonce, mallory.publicKey))).toBe(ErrorCode.DECRYPT_FAILED);
    expect(Array.from(opener.open(honest, alice.publicKey))).toEqual(Array.from(update));
  });

  it("refuses an envelope for another round with STALE_ROUND", () => {
    const { keys, opener } = roundSetup(5);
    const envelope = sealUpdate({
      round: 4,
      serverPublicKey: keys.publicKey,
      identity: alice,
      plaintext: update,
    });
    expect(codeOf(() => opener.open(envelope, alice.publicKey))).toBe(ErrorCode.STALE_ROUND);
  });

  it("refuses ciphertext sealed to another round's key with DECRYPT_FAILED", () => {
    const previous = createRoundKeyPair();
    const { opener } = roundSetup(3);
    const old = sealUpdate({
      round: 2,
      serverPublicKey: previous.publicKey,
      identity: alice,
      plaintext: update,
    });
    const relabelled = resign({ ...old, round: 3 }, alice);
    expect(codeOf(() => opener.open(relabelled, alice.publicKey))).toBe(ErrorCode.DECRYPT_FAILED);
  });

  it("refuses tampered ciphertext with BAD_SIGNATURE", () => {
    const { keys, opener } = roundSetup(1);
    const envelope = sealUpdate({
      round: 1,
      serverPublicKey: keys.publicKey,
      identity: alice,
      plaintext: update,
    });
    const ciphertext = Uint8Array.from(envelope.ciphertext);
    ciphertext[ciphertext.length - 1] ^= 0x01;
    expect(codeOf(() => opener.open({ ...envelope, ciphertext }, alice.publicKey))).toBe(
      ErrorCode.BAD_SIGNATURE,
    );
  });

  it("refuses another client's ciphertext re-signed as its own with BAD_SIGNATURE", () => {
    const { keys, opener } = roundSetup(1);
    const stolen = resign(
      sealUpdate({ round: 1, serverPublicKey: keys.publicKey, identity: alice, plaintext: update }),
      mallory,
    );
    expect(codeOf(() => opener.open(stolen, mallory.publicKey))).toBe(ErrorCode.BAD_SIGNATURE);
  });

  it("refuses envelopes after close() and zeroes the secret key", () => {
    const keys = createRoundKeyPair();
    const secretKey = Uint8Array.from(keys.secretKey);
    const opener = new EnvelopeOpener({ round: 1, secretKey });
    const envelope = sealUpdate({
      round: 1,
      serverPublicKey: keys.publicKey,
      identity: alice,
      plaintext: update,
    });
    opener.close();
    expect(secretKey.every((b) => b === 0)).toBe(true);
    expect(codeOf(() => opener.open(envelope, alice.publicKey))).toBe(ErrorCode.STALE_ROUND);
  });

  it("schema accepts a sealed envelope", () => {
    const keys = createRoundKeyPair();
    const envelope = sealUpdate({
      round: 1,
      serverPublicKey: keys.publicKey,
      identity: alice,
      plaintext: update,
    });
    expect(envelopeSchema.safeParse(envelope).success).toBe(true);
  });

  it("schema rejects a wrong-length nonce", () => {
    const keys = createRoundKeyPair();
    const envelope = sealUpdate({
      round: 1,
      serverPublicKey: keys.publicKey,
      identity: alice,
      plaintext: update,
    });
    const result = envelopeSchema.safeParse({ ...envelope, nonce: envelope.nonce.subarray(0, 23) });
    expect(result.success).toBe(false);
    expect(result.error?.issues[0].path).toEqual(["nonce"]);
  });

  it("opener refuses a malformed envelope with BAD_PAYLOAD", () => {
    const { keys, opener } = roundSetup(1);
    const envelope = sealUpdate({
      round: 1,
      serverPublicKey: keys.publicKey,
      identity: alice,
      plaintext: update,
    });
    expect(codeOf(() => opener.open({ ...envelope, nonce: new Uint8Array(12) }, alice.publicKey))).toBe(
      ErrorCode.BAD_PAYLOAD,
    );
  });
});
