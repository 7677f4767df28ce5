import { createHash } from "node:crypto";
import nacl from "tweetnacl";
import { z } from "zod";
import { ErrorCode, FedsimError } from "../errors.js";
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, signDetached, verifyDetached } from "./ed25519.js";
import type { Identity } from "./identity.js";

/**
 * Per-round update envelopes: the client seals its update with nacl.box to the coordinator's
 * ephemeral key for this round, from a fresh ephemeral sender key, and signs a hash of it with its
 * identity key. This protects updates from anyone on the network; the coordinator still sees each
 * client's update.
 *
 * Inside the box the plaintext is prefixed by the signer's identity public key, so another client
 * cannot re-sign a captured ciphertext and submit someone else's update as its own.
 */
export interface Envelope {
  round: number;
  /** 24 random bytes, fresh per message; also the replay key. */
  nonce: Uint8Array;
  /** Ephemeral X25519 public key, fresh per message. */
  senderBoxPublicKey: Uint8Array;
  ciphertext: Uint8Array;
  /** ed25519 over sha512("fedsim-envelope-v1" || u32be round || nonce || senderBoxPublicKey || sha512(ciphertext)). */
  signature: Uint8Array;
}

export interface RoundKeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

const NONCE_BYTES = nacl.box.nonceLength;
const BOX_PUBLIC_KEY_BYTES = nacl.box.publicKeyLength;
const SIGN_PUBLIC_KEY_BYTES = PUBLIC_KEY_BYTES;
const MIN_CIPHERTEXT_BYTES = nacl.box.overheadLength + SIGN_PUBLIC_KEY_BYTES;
const MAX_ROUND = 0xffff_ffff;
const ENVELOPE_DOMAIN = new TextEncoder().encode("fedsim-envelope-v1");

function bytesOfLength(name: string, length: number) {
  return z
    .instanceof(Uint8Array)
    .refine((b) => b.length === length, { error: `${name} must be ${length} bytes` });
}

/** Shape check for an envelope off the wire (Buffers are Uint8Arrays, so Socket.IO binaries pass). */
export const envelopeSchema = z.object({
  round: z.number().int().min(0).max(MAX_ROUND),
  nonce: bytesOfLength("nonce", NONCE_BYTES),
  senderBoxPublicKey: bytesOfLength("senderBoxPublicKey", BOX_PUBLIC_KEY_BYTES),
  ciphertext: z.instanceof(Uint8Array).refine((b) => b.length >= MIN_CIPHERTEXT_BYTES, {
    error: `ciphertext must be at least ${MIN_CIPHERTEXT_BYTES} bytes`,
  }),
  signature: bytesOfLength("signature", SIGNATURE_BYTES),
});

/** The ephemeral nacl.box key pair the coordinator makes for each round. */
export function createRoundKeyPair(): RoundKeyPair {
  const pair = nacl.box.keyPair();
  return { publicKey: pair.publicKey, secretKey: pair.secretKey };
}

export interface SealUpdateInput {
  round: number;
  /** The coordinator's round public key (createRoundKeyPair().publicKey). */
  serverPublicKey: Uint8Array;
  identity: Identity;
  plaintext: Uint8Array;
}

export function sealUpdate(input: SealUpdateInput): Envelope {
  const { round, serverPublicKey, identity, plaintext } = input;
  requireRound(round);
  requireBytes(serverPublicKey, BOX_PUBLIC_KEY_BYTES, "serverPublicKey");
  requireBytes(identity.publicKey, SIGN_PUBLIC_KEY_BYTES, "identity.publicKey");
  if (!(plaintext instanceof Uint8Array)) {
    throw new FedsimError(ErrorCode.BAD_PAYLOAD, "plaintext must be a Uint8Array");
  }
  // nacl.box copies its input into a padded buffer anyway, so this extra copy costs little.
  const inner = new Uint8Array(SIGN_PUBLIC_KEY_BYTES + plaintext.length);
  inner.set(identity.publicKey, 0);
  inner.set(plaintext, SIGN_PUBLIC_KEY_BYTES);
  const sender = nacl.box.keyPair();
  const nonce = nacl.randomBytes(NONCE_BYTES);
  const ciphertext = nacl.box(inner, nonce, serverPublicKey, sender.secretKey);
  sender.secretKey.fill(0);
  inner.fill(0);
  // Sign a 64-byte digest: nacl.sign over megabytes is ~20 MB/s, node's sha512 is far faster.
  const digest = envelopeDigest(round, nonce, sender.publicKey, ciphertext);
  const signature = signDetached(digest, identity.secretKey);
  return { round, nonce, senderBoxPublicKey: sender.publicKey, ciphertext, signature };
}

export interface EnvelopeOpenerOptions {
  round: number;
  /** The round's box secret key. The opener keeps this array and zeroes it on close(). */
  secretKey: Uint8Array;
}

/**
 * Opens the envelopes of one round. Checks run in a fixed order, each with its own code:
 * shape (BAD_PAYLOAD) → round (STALE_ROUND) → replay (REPLAY) → signature (BAD_SIGNATURE) →
 * decryption and sender binding (DECRYPT_FAILED / BAD_SIGNATURE).
 *
 * Replay memory: a (signer, nonce) pair is remembered once its signature verifies, before
 * decryption. So
 * - a replay of any message the signer really sent (accepted or not) is refused as REPLAY;
 * - a forged message fails the signature check and is never remembered, so it cannot "burn" the
 *   nonce of an honest client's message still in flight;
 * - another authenticated client copying an honest client's nonce only fills its own slot, since
 *   the key includes the signer's public key.
 */
export class EnvelopeOpener {
  readonly round: number;
  private readonly secretKey: Uint8Array;
  private readonly seen = new Set<string>();
  private closed = false;

  constructor(options: EnvelopeOpenerOptions) {
    requireRound(options.round);
    requireBytes(options.secretKey, nacl.box.secretKeyLength, "secretKey");
    this.round = options.round;
    this.secretKey = options.secretKey;
  }

  /** Returns the plaintext, or throws a FedsimError saying why the envelope is refused. */
  open(envelope: Envelope, signerPublicKey: Uint8Array): Uint8Array {
    requireBytes(signerPublicKey, SIGN_PUBLIC_KEY_BYTES, "signerPublicKey");
    const parsed = envelopeSchema.safeParse(envelope);
    if (!parsed.success) {
      throw new FedsimError(
        ErrorCode.BAD_PAYLOAD,
        "envelope is malformed",
        parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`),
      );
    }
    const { round, nonce, senderBoxPublicKey, ciphertext, signature } = envelope;
    if (this.closed) {
      throw new FedsimError(
        ErrorCode.STALE_ROUND,
        `round ${this.round} is closed; envelope arrived too late`,
      );
    }
    if (round !== this.round) {
      throw new FedsimError(
        ErrorCode.STALE_ROUND,
        `envelope is for round ${round}, the current round is ${this.round}`,
      );
    }
    const replayKey = `${Buffer.from(signerPublicKey).toString("hex")}:${Buffer.from(nonce).toString("hex")}`;
    if (this.seen.has(replayKey)) {
      throw new FedsimError(ErrorCode.REPLAY, `envelope nonce already used in round ${round}`);
    }
    const digest = envelopeDigest(round, nonce, senderBoxPublicKey, ciphertext);
    if (!verifyDetached(digest, signature, signerPublicKey)) {
      throw new FedsimError(ErrorCode.BAD_SIGNATURE, "envelope signature does not verify for this client");
    }
    this.seen.add(replayKey);
    const inner = nacl.box.open(ciphertext, nonce, senderBoxPublicKey, this.secretKey);
    if (inner === null) {
      throw new FedsimError(
        ErrorCode.DECRYPT_FAILED,
        `envelope does not decrypt with the round ${round} key (sealed to another round's key?)`,
      );
    }
    if (!equalBytes(inner.subarray(0, SIGN_PUBLIC_KEY_BYTES), signerPublicKey)) {
      inner.fill(0);
      throw new FedsimError(
        ErrorCode.BAD_SIGNATURE,
        "envelope was sealed by another identity than the one that signed it",
      );
    }
    return inner.subarray(SIGN_PUBLIC_KEY_BYTES);
  }

  /** Forget the round key: zeroes the secret key array passed to the constructor. */
  close(): void {
    this.secretKey.fill(0);
    this.seen.clear();
    this.closed = true;
  }
}

/** sha512("fedsim-envelope-v1" || u32be round || nonce || senderBoxPublicKey || sha512(ciphertext)). */
export function envelopeDigest(
  round: number,
  nonce: Uint8Array,
  senderBoxPublicKey: Uint8Array,
  ciphertext: Uint8Array,
): Uint8Array {
  const roundBytes = Buffer.alloc(4);
  roundBytes.writeUInt32BE(round, 0);
  const ciphertextHash = createHash("sha512").update(ciphertext).digest();
  // Every field after the fixed prefix has a fixed length, so the concatenation is unambiguous.
  const digest = createHash("sha512")
    .update(ENVELOPE_DOMAIN)
    .update(roundBytes)
    .update(nonce)
    .update(senderBoxPublicKey)
    .update(ciphertextHash)
    .digest();
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength);
}

function requireRound(round: number): void {
  if (!Number.isInteger(round) || round < 0 || round > MAX_ROUND) {
    throw new FedsimError(
      ErrorCode.BAD_PAYLOAD,
      `round must be an integer in [0, ${MAX_ROUND}], got ${round}`,
    );
  }
}

function requireBytes(bytes: Uint8Array, length: number, name: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    const got = bytes instanceof Uint8Array ? `${bytes.length} bytes` : typeof bytes;
    throw new FedsimError(ErrorCode.BAD_PAYLOAD, `${name} must be ${length} bytes, got ${got}`);
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
