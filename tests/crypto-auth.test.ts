import { describe, expect, it } from "vitest";
import {
  type AuthMode,
  createChallenge,
  MIN_TOKEN_CHARS,
  signChallenge,
  verifyHandshake,
} from "../common/crypto/auth.js";
import { clientIdOf, encodePublicKey, generateIdentity } from "../common/crypto/identity.js";
import { ErrorCode } from "../common/errors.js";
import { MAX_TOKEN_CHARS } from "../common/protocol.js";
import { createAuthGate } from "../server/auth-gate.js";

const alice = generateIdentity();
const mallory = generateIdentity();
const aliceKey = encodePublicKey(alice.publicKey);
const allowlist: AuthMode = { kind: "allowlist", publicKeys: new Set([aliceKey]) };

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe("allowlist mode", () => {
  it("admits an allowlisted key and derives the client id from it", () => {
    const challenge = createChallenge();
    const result = verifyHandshake(
      allowlist,
      { publicKey: aliceKey, signature: signChallenge(alice, challenge) },
      challenge,
    );
    expect(result).toEqual({ clientId: clientIdOf(alice.publicKey), publicKey: aliceKey });
  });

  it("refuses an unknown key with UNAUTHORIZED", () => {
    const challenge = createChallenge();
    const presented = {
      publicKey: encodePublicKey(mallory.publicKey),
      signature: signChallenge(mallory, challenge),
    };
    expect(codeOf(() => verifyHandshake(allowlist, presented, challenge))).toBe(ErrorCode.UNAUTHORIZED);
  });

  it("refuses a handshake without a public key with UNAUTHORIZED", () => {
    const challenge = createChallenge();
    expect(
      codeOf(() => verifyHandshake(allowlist, { signature: signChallenge(alice, challenge) }, challenge)),
    ).toBe(ErrorCode.UNAUTHORIZED);
  });

  it("refuses an allowlisted key without a signature with UNAUTHORIZED", () => {
    expect(codeOf(() => verifyHandshake(allowlist, { publicKey: aliceKey }, createChallenge()))).toBe(
      ErrorCode.UNAUTHORIZED,
    );
  });

  it("refuses an allowlisted key signed by another key with BAD_SIGNATURE", () => {
    const challenge = createChallenge();
    const presented = { publicKey: aliceKey, signature: signChallenge(mallory, challenge) };
    expect(codeOf(() => verifyHandshake(allowlist, presented, challenge))).toBe(ErrorCode.BAD_SIGNATURE);
  });

  it("refuses a replayed handshake signed over a different challenge with BAD_SIGNATURE", () => {
    const captured = { publicKey: aliceKey, signature: signChallenge(alice, createChallenge()) };
    expect(codeOf(() => verifyHandshake(allowlist, captured, createChallenge()))).toBe(
      ErrorCode.BAD_SIGNATURE,
    );
  });

  it("refuses a signature made for another server name with BAD_SIGNATURE", () => {
    const challenge = createChallenge();
    const presented = { publicKey: aliceKey, signature: signChallenge(alice, challenge, "other.example") };
    expect(
      codeOf(() => verifyHandshake(allowlist, presented, challenge, { serverName: "coord.example" })),
    ).toBe(ErrorCode.BAD_SIGNATURE);
  });
});

describe("token mode", () => {
  const tokenMode: AuthMode = { kind: "token", token: "s3cret-token-for-tests" };

  it("admits the right token and assigns a random server-side id", () => {
    const challenge = createChallenge();
    const first = verifyHandshake(tokenMode, { token: "s3cret-token-for-tests" }, challenge);
    const second = verifyHandshake(tokenMode, { token: "s3cret-token-for-tests" }, challenge);
    expect(first.clientId).toMatch(/^anon-[0-9a-f]{16}$/);
    expect(first.clientId).not.toBe(second.clientId);
    expect(first.publicKey).toBeUndefined();
  });

  it("refuses a wrong token with UNAUTHORIZED", () => {
    expect(
      codeOf(() => verifyHandshake(tokenMode, { token: "s3cret-token-for-testz" }, createChallenge())),
    ).toBe(ErrorCode.UNAUTHORIZED);
  });

  it("refuses a missing token with UNAUTHORIZED", () => {
    expect(codeOf(() => verifyHandshake(tokenMode, {}, createChallenge()))).toBe(ErrorCode.UNAUTHORIZED);
  });

  it("names a token client by its verified public key", () => {
    const challenge = createChallenge();
    const presented = {
      token: "s3cret-token-for-tests",
      publicKey: aliceKey,
      signature: signChallenge(alice, challenge),
    };
    expect(verifyHandshake(tokenMode, presented, challenge).clientId).toBe(clientIdOf(alice.publicKey));
  });

  it(`refuses to run with a token shorter than ${MIN_TOKEN_CHARS} characters or longer than a hello carries (INVALID_CONFIG)`, () => {
    const atMinimum = "x".repeat(MIN_TOKEN_CHARS);
    expect(createAuthGate({ kind: "token", token: atMinimum }).mode).toBe("token");
    expect(
      verifyHandshake({ kind: "token", token: atMinimum }, { token: atMinimum }, createChallenge()).clientId,
    ).toMatch(/^anon-/);
    expect(createAuthGate({ kind: "token", token: "x".repeat(MAX_TOKEN_CHARS) }).mode).toBe("token");
    for (const token of ["", "x".repeat(MIN_TOKEN_CHARS - 1), "x".repeat(MAX_TOKEN_CHARS + 1)]) {
      expect(codeOf(() => createAuthGate({ kind: "token", token }))).toBe(ErrorCode.INVALID_CONFIG);
      // Even a client presenting the same short token is not let in.
      expect(codeOf(() => verifyHandshake({ kind: "token", token }, { token }, createChallenge()))).toBe(
        ErrorCode.INVALID_CONFIG,
      );
    }
  });

  it("still verifies a presented public key in token mode", () => {
    const challenge = createChallenge();
    const presented = {
      token: "s3cret-token-for-tests",
      publicKey: aliceKey,
      signature: signChallenge(mallory, challenge),
    };
    expect(codeOf(() => verifyHandshake(tokenMode, presented, challenge))).toBe(ErrorCode.BAD_SIGNATURE);
  });
});

describe("open mode", () => {
  const open: AuthMode = { kind: "open" };

  it("admits a client with no credentials under a random id", () => {
    expect(verifyHandshake(open, {}, createChallenge()).clientId).toMatch(/^anon-/);
  });

  it("admits any key that proves possession and names the client by it", () => {
    const challenge = createChallenge();
    const presented = {
      publicKey: encodePublicKey(mallory.publicKey),
      signature: signChallenge(mallory, challenge),
    };
    expect(verifyHandshake(open, presented, challenge).clientId).toBe(clientIdOf(mallory.publicKey));
  });

  it("refuses a claimed key whose signature does not verify", () => {
    const challenge = createChallenge();
    const presented = { publicKey: aliceKey, signature: signChallenge(mallory, challenge) };
    expect(codeOf(() => verifyHandshake(open, presented, challenge))).toBe(ErrorCode.BAD_SIGNATURE);
  });
});
