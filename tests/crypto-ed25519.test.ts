import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import { keyPairFromSeed, signDetached, verifyDetached } from "../common/crypto/ed25519.js";

describe("ed25519 through node:crypto", () => {
  it("derives the same key pair and signatures as tweetnacl", () => {
    for (let i = 0; i < 8; i++) {
      const seed = nacl.randomBytes(32);
      const ours = keyPairFromSeed(seed);
      const theirs = nacl.sign.keyPair.fromSeed(seed);
      expect(Buffer.from(ours.publicKey)).toEqual(Buffer.from(theirs.publicKey));
      expect(Buffer.from(ours.secretKey)).toEqual(Buffer.from(theirs.secretKey));
      const message = nacl.randomBytes(1 + i * 37);
      const signature = signDetached(message, ours.secretKey);
      expect(Buffer.from(signature)).toEqual(Buffer.from(nacl.sign.detached(message, theirs.secretKey)));
      expect(nacl.sign.detached.verify(message, signature, theirs.publicKey)).toBe(true);
      expect(verifyDetached(message, nacl.sign.detached(message, theirs.secretKey), ours.publicKey)).toBe(
        true,
      );
    }
  });

  it("rejects a changed message, a wrong key and malformed input without throwing", () => {
    const pair = keyPairFromSeed(new Uint8Array(32).fill(7));
    const other = keyPairFromSeed(new Uint8Array(32).fill(8));
    const message = new TextEncoder().encode("round 3");
    const signature = signDetached(message, pair.secretKey);
    expect(verifyDetached(message, signature, pair.publicKey)).toBe(true);
    expect(verifyDetached(new TextEncoder().encode("round 4"), signature, pair.publicKey)).toBe(false);
    expect(verifyDetached(message, signature, other.publicKey)).toBe(false);
    expect(verifyDetached(message, signature.subarray(0, 63), pair.publicKey)).toBe(false);
    expect(verifyDetached(message, signature, new Uint8Array(31))).toBe(false);
    // 32 bytes that are not a point on the curve.
    expect(verifyDetached(message, signature, new Uint8Array(32).fill(0xff))).toBe(false);
    expect(() => keyPairFromSeed(new Uint8Array(31))).toThrow(RangeError);
  });
});
