import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import nacl from "tweetnacl";
import { ErrorCode, FedsimError } from "../errors.js";
import { MAX_TOKEN_CHARS } from "../protocol.js";
import { signDetached, verifyDetached } from "./ed25519.js";
import { clientIdOf, decodePublicKey, encodePublicKey, type Identity } from "./identity.js";

/**
 * Handshake authentication, decided by the coordinator. The client presents credentials; the
 * server derives the client id from what it verified and never from an id the client sends.
 *
 * Challenge–response: the server sends createChallenge() bytes, the client answers with
 * signChallenge(), the server calls verifyHandshake(). Each challenge must be used once: the
 * transport issues a fresh one per connection attempt, so a captured handshake cannot be replayed.
 */
export type AuthMode =
  /** Only clients whose public key (canonical base64) is listed may connect. */
  | { kind: "allowlist"; publicKeys: Set<string> }
  /** Any client with the shared token; a presented public key is still verified and names the client. */
  | { kind: "token"; token: string }
  /** Anyone; for local simulations. A presented public key is still verified and names the client. */
  | { kind: "open" };

export interface HandshakeCredentials {
  /** Base64 ed25519 public key (see encodePublicKey). */
  publicKey?: string;
  /** signChallenge() output for the server's challenge. */
  signature?: Uint8Array;
  token?: string;
}

export interface VerifiedClient {
  clientId: string;
  /** Canonical base64 public key, when the client proved it holds one. */
  publicKey?: string;
}

export interface VerifyHandshakeOptions {
  /** Must equal the serverName the client signed with (default ""): see signChallenge. */
  serverName?: string;
}

export const CHALLENGE_BYTES = 32;
/**
 * The shortest shared token a coordinator accepts, in UTF-16 code units (characters, for ASCII):
 * a shared secret any shorter is guessable. 16 hex characters are 64 random bits.
 */
export const MIN_TOKEN_CHARS = 16;
const AUTH_DOMAIN = new TextEncoder().encode("fedsim-auth-v1\0");

export function createChallenge(): Uint8Array {
  return nacl.randomBytes(CHALLENGE_BYTES);
}

/**
 * Signs "fedsim-auth-v1\0" || challenge || serverName. The domain prefix keeps a handshake
 * signature from ever doubling as an envelope signature (or anything else signed by this key);
 * serverName, when both sides set it, stops a rogue server relaying another server's challenge.
 */
export function signChallenge(identity: Identity, challenge: Uint8Array, serverName?: string): Uint8Array {
  return signDetached(challengeMessage(challenge, serverName ?? ""), identity.secretKey);
}

/**
 * Checks a client's handshake against the server's mode and the challenge it issued.
 * Throws UNAUTHORIZED (missing credential, unknown key, wrong token, malformed key) or
 * BAD_SIGNATURE (the signature does not verify for this key, challenge and server name).
 */
export function verifyHandshake(
  mode: AuthMode,
  presented: HandshakeCredentials,
  challenge: Uint8Array,
  options: VerifyHandshakeOptions = {},
): VerifiedClient {
  const serverName = options.serverName ?? "";
  switch (mode.kind) {
    case "allowlist": {
      if (presented.publicKey === undefined) {
        throw new FedsimError(ErrorCode.UNAUTHORIZED, "handshake: this server requires a public key");
      }
      const publicKey = canonicalPublicKey(presented.publicKey);
      // Membership first: refusing unknown keys costs no signature verification.
      if (!mode.publicKeys.has(publicKey)) {
        throw new FedsimError(
          ErrorCode.UNAUTHORIZED,
          `handshake: public key ${publicKey} is not on the allowlist`,
        );
      }
      return provePossession(publicKey, presented.signature, challenge, serverName);
    }
    case "token": {
      checkAuthMode(mode);
      if (presented.token === undefined) {
        throw new FedsimError(ErrorCode.UNAUTHORIZED, "handshake: this server requires a token");
      }
      if (!tokensEqual(presented.token, mode.token)) {
        throw new FedsimError(ErrorCode.UNAUTHORIZED, "handshake: wrong token");
      }
      return identifyOptionalKey(presented, challenge, serverName);
    }
    case "open":
      return identifyOptionalKey(presented, challenge, serverName);
    default: {
      const unknownMode: never = mode;
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `unknown auth mode ${JSON.stringify(unknownMode)}`);
    }
  }
}

/**
 * Refuses a mode no client could (or should) pass, so a coordinator fails at start-up rather than
 * at every hello: a token shorter than MIN_TOKEN_CHARS, or longer than a hello may carry.
 */
export function checkAuthMode(mode: AuthMode): void {
  if (mode.kind !== "token") return;
  const length = typeof mode.token === "string" ? mode.token.length : -1;
  if (length < MIN_TOKEN_CHARS || length > MAX_TOKEN_CHARS) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `auth.token must be a string of ${MIN_TOKEN_CHARS} to ${MAX_TOKEN_CHARS} characters (got ${length < 0 ? typeof mode.token : length})`,
      ["use a random one, e.g. openssl rand -hex 16"],
    );
  }
}

/**
 * The checks that need no signature (allowlist membership, token), run before a challenge is
 * issued, so that a refused client learns nothing about the federation, not even the model.
 */
export function precheckCredentials(mode: AuthMode, presented: HandshakeCredentials): void {
  // A malformed key is refused in every mode, before a challenge is spent on it.
  if (presented.publicKey !== undefined) canonicalPublicKey(presented.publicKey);
  if (mode.kind === "allowlist") {
    if (presented.publicKey === undefined) {
      throw new FedsimError(ErrorCode.UNAUTHORIZED, "handshake: this server requires a public key");
    }
    const publicKey = canonicalPublicKey(presented.publicKey);
    if (!mode.publicKeys.has(publicKey)) {
      throw new FedsimError(
        ErrorCode.UNAUTHORIZED,
        `handshake: public key ${publicKey} is not on the allowlist`,
      );
    }
  } else if (mode.kind === "token") {
    if (presented.token === undefined) {
      throw new FedsimError(ErrorCode.UNAUTHORIZED, "handshake: this server requires a token");
    }
    if (!tokensEqual(presented.token, mode.token)) {
      throw new FedsimError(ErrorCode.UNAUTHORIZED, "handshake: wrong token");
    }
  }
}

/** A client with no key gets a random id that cannot collide with key-derived "c-" ids. */
export function assignAnonymousClientId(): string {
  return `anon-${randomBytes(8).toString("hex")}`;
}

function identifyOptionalKey(
  presented: HandshakeCredentials,
  challenge: Uint8Array,
  serverName: string,
): VerifiedClient {
  if (presented.publicKey === undefined) {
    if (presented.signature !== undefined) {
      throw new FedsimError(ErrorCode.UNAUTHORIZED, "handshake: a signature was sent without its public key");
    }
    return { clientId: assignAnonymousClientId() };
  }
  return provePossession(canonicalPublicKey(presented.publicKey), presented.signature, challenge, serverName);
}

function provePossession(
  publicKey: string,
  signature: Uint8Array | undefined,
  challenge: Uint8Array,
  serverName: string,
): VerifiedClient {
  if (signature === undefined) {
    throw new FedsimError(ErrorCode.UNAUTHORIZED, "handshake: a public key was sent without a signature");
  }
  const keyBytes = decodePublicKey(publicKey);
  const message = challengeMessage(challenge, serverName);
  if (!(signature instanceof Uint8Array) || !verifyDetached(message, signature, keyBytes)) {
    throw new FedsimError(
      ErrorCode.BAD_SIGNATURE,
      "handshake: signature does not verify for this public key and challenge",
    );
  }
  return { clientId: clientIdOf(keyBytes), publicKey };
}

function canonicalPublicKey(encoded: string): string {
  try {
    return encodePublicKey(decodePublicKey(encoded));
  } catch {
    throw new FedsimError(ErrorCode.UNAUTHORIZED, "handshake: publicKey is not a base64 ed25519 public key");
  }
}

function challengeMessage(challenge: Uint8Array, serverName: string): Uint8Array {
  if (!(challenge instanceof Uint8Array) || challenge.length !== CHALLENGE_BYTES) {
    throw new FedsimError(ErrorCode.BAD_PAYLOAD, `challenge must be ${CHALLENGE_BYTES} bytes`);
  }
  // Prefix and challenge have fixed lengths, so appending the name keeps the encoding unambiguous.
  const name = new TextEncoder().encode(serverName);
  const message = new Uint8Array(AUTH_DOMAIN.length + CHALLENGE_BYTES + name.length);
  message.set(AUTH_DOMAIN, 0);
  message.set(challenge, AUTH_DOMAIN.length);
  message.set(name, AUTH_DOMAIN.length + CHALLENGE_BYTES);
  return message;
}

/** Hash both sides first: timingSafeEqual needs equal lengths, and this hides the token's length. */
export function tokensEqual(presented: string, expected: string): boolean {
  const a = createHash("sha256").update(presented, "utf8").digest();
  const b = createHash("sha256").update(expected, "utf8").digest();
  return timingSafeEqual(a, b);
}
