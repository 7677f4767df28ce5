import { createHash } from "node:crypto";
import nacl from "tweetnacl";
import { z } from "zod";
import { ErrorCode, FedsimError } from "../errors.js";
import { MAX_ENVELOPE_CHUNKS, safeParseUntrusted } from "../protocol.js";
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, signDetached, verifyDetached } from "./ed25519.js";
import { type ChunkJob, runChunkJobs } from "./envelope-pool.js";
import type { Identity } from "./identity.js";

/**
 * Per-round update envelopes (format 2, docs/PROTOCOL.md §6): the client agrees a key with the
 * coordinator's ephemeral key for this round, from a fresh ephemeral sender key (nacl.box.before:
 * X25519 + HSalsa20), splits the update into chunks, seals each chunk with tweetnacl's secretbox
 * (XSalsa20-Poly1305) on worker threads, and signs a digest of the whole with its identity key.
 * This protects updates from anyone on the network; the coordinator still sees each client's update.
 *
 * Each chunk's nonce is the envelope's 16-byte nonce || u32be chunk index || u32be chunk count, and
 * the key is fresh per envelope, so a chunk moved to another position, a chunk list cut short or
 * padded with a copy, and a chunk from another envelope all fail to authenticate, even when the
 * signer itself rearranged them. Inside the chunks the plaintext is prefixed by the signer's
 * identity public key, so another client cannot re-sign a captured envelope as its own.
 */
export interface Envelope {
  version: typeof ENVELOPE_VERSION;
  round: number;
  /** 16 random bytes, fresh per message: the envelope's identity and the replay key. */
  nonce: Uint8Array;
  /** Ephemeral X25519 public key, fresh per message. */
  senderBoxPublicKey: Uint8Array;
  /** nacl.secretbox of each slice of (identity public key || plaintext), in order. */
  chunks: Uint8Array[];
  /** ed25519 over envelopeDigest(). */
  signature: Uint8Array;
}

export interface RoundKeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

/** Format 1 was one nacl.box over the whole update; format 2 is chunked secretbox. */
export const ENVELOPE_VERSION = 2;
export const ENVELOPE_NONCE_BYTES = 16;
/** Plaintext bytes per chunk: small enough that a model-sized update spreads over every core. */
export const ENVELOPE_CHUNK_BYTES = 256 * 1024;
const TAG_BYTES = nacl.secretbox.overheadLength;
const BOX_PUBLIC_KEY_BYTES = nacl.box.publicKeyLength;
const SIGN_PUBLIC_KEY_BYTES = PUBLIC_KEY_BYTES;
const MAX_ROUND = 0xffff_ffff;
const ENVELOPE_DOMAIN = new TextEncoder().encode("fedsim-envelope-v2");

function bytesOfLength(name: string, length: number) {
  return z
    .instanceof(Uint8Array)
    .refine((b) => b.length === length, { error: `${name} must be ${length} bytes` });
}

/** Shape check for a format-2 envelope off the wire (Buffers are Uint8Arrays, so Socket.IO binaries pass). */
export const envelopeSchema = z.object({
  version: z.literal(ENVELOPE_VERSION),
  round: z.number().int().min(0).max(MAX_ROUND),
  nonce: bytesOfLength("nonce", ENVELOPE_NONCE_BYTES),
  senderBoxPublicKey: bytesOfLength("senderBoxPublicKey", BOX_PUBLIC_KEY_BYTES),
  chunks: z
    .array(
      z.instanceof(Uint8Array).refine((b) => b.length > TAG_BYTES, {
        error: `a chunk must be more than its ${TAG_BYTES}-byte tag`,
      }),
    )
    .min(1)
    .max(MAX_ENVELOPE_CHUNKS),
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
  /** Plaintext bytes per chunk (ENVELOPE_CHUNK_BYTES by default); any split opens the same. */
  chunkBytes?: number;
}

export async function sealUpdate(input: SealUpdateInput): Promise<Envelope> {
  const { round, serverPublicKey, identity, plaintext } = input;
  requireRound(round);
  requireBytes(serverPublicKey, BOX_PUBLIC_KEY_BYTES, "serverPublicKey");
  requireBytes(identity.publicKey, SIGN_PUBLIC_KEY_BYTES, "identity.publicKey");
  if (!(plaintext instanceof Uint8Array)) {
    throw new FedsimError(ErrorCode.BAD_PAYLOAD, "plaintext must be a Uint8Array");
  }
  const chunkBytes = input.chunkBytes ?? ENVELOPE_CHUNK_BYTES;
  const total = SIGN_PUBLIC_KEY_BYTES + plaintext.length;
  const count = Math.ceil(total / chunkBytes);
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1 || count > MAX_ENVELOPE_CHUNKS) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `chunkBytes must be a positive integer giving at most ${MAX_ENVELOPE_CHUNKS} chunks (got ${chunkBytes})`,
    );
  }
  const sender = nacl.box.keyPair();
  const key = nacl.box.before(serverPublicKey, sender.secretKey);
  sender.secretKey.fill(0);
  const nonce = nacl.randomBytes(ENVELOPE_NONCE_BYTES);
  try {
    const jobs: ChunkJob[] = [];
    for (let index = 0; index < count; index++) {
      const start = index * chunkBytes;
      const data = new Uint8Array(Math.min(chunkBytes, total - start));
      // The chunk is a slice of (identity public key || plaintext), copied into a buffer of its own.
      const end = start + data.length;
      if (start < SIGN_PUBLIC_KEY_BYTES) {
        data.set(identity.publicKey.subarray(start, Math.min(end, SIGN_PUBLIC_KEY_BYTES)));
      }
      if (end > SIGN_PUBLIC_KEY_BYTES) {
        const from = Math.max(0, start - SIGN_PUBLIC_KEY_BYTES);
        data.set(
          plaintext.subarray(from, end - SIGN_PUBLIC_KEY_BYTES),
          Math.max(0, SIGN_PUBLIC_KEY_BYTES - start),
        );
      }
      jobs.push({ op: "seal", key, nonce: chunkNonce(nonce, index, count), data });
    }
    const sealed = await runChunkJobs(jobs);
    const chunks = sealed.map((chunk) => {
      if (!chunk) throw new FedsimError(ErrorCode.INTERNAL, "a chunk failed to seal");
      return chunk.bytes;
    });
    const header = { round, nonce, senderBoxPublicKey: sender.publicKey };
    const digest = envelopeDigest(
      header,
      sealed.map((chunk) => chunk!.hash!),
    );
    const signature = signDetached(digest, identity.secretKey);
    return { version: ENVELOPE_VERSION, ...header, chunks, signature };
  } finally {
    key.fill(0);
  }
}

export interface EnvelopeOpenerOptions {
  round: number;
  /** The round's box secret key. The opener keeps this array and zeroes it on close(). */
  secretKey: Uint8Array;
}

/**
 * Opens the envelopes of one round. Checks run in a fixed order, each with its own code:
 * format (PROTOCOL_VERSION) → shape (BAD_PAYLOAD) → round (STALE_ROUND) → replay (REPLAY) →
 * signature (BAD_SIGNATURE) → decryption of every chunk (DECRYPT_FAILED) → sender binding
 * (BAD_SIGNATURE). Everything up to the signature runs before open() first yields, so two copies
 * of one envelope can never both get past the replay check.
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

  /** Resolves to the plaintext, or rejects with a FedsimError saying why the envelope is refused. */
  open(envelope: unknown, signerPublicKey: Uint8Array): Promise<Uint8Array> {
    try {
      const checked = this.verify(envelope, signerPublicKey);
      return this.decrypt(checked, signerPublicKey);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Forget the round key: zeroes the secret key array passed to the constructor. */
  close(): void {
    this.secretKey.fill(0);
    this.seen.clear();
    this.closed = true;
  }

  /** Every check up to the signature, synchronously; remembers the nonce once the signature holds. */
  private verify(envelope: unknown, signerPublicKey: Uint8Array): Envelope {
    requireBytes(signerPublicKey, SIGN_PUBLIC_KEY_BYTES, "signerPublicKey");
    requireFormat(envelope);
    // Hostile values can make zod itself throw; that is a malformed envelope too.
    const parsed = safeParseUntrusted(envelopeSchema, envelope);
    if (!parsed.success) {
      throw new FedsimError(
        ErrorCode.BAD_PAYLOAD,
        "envelope is malformed",
        parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`),
      );
    }
    const checked = parsed.data as Envelope;
    const { round, nonce, chunks, signature } = checked;
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
    const digest = envelopeDigest(checked, chunks.map(chunkHash));
    if (!verifyDetached(digest, signature, signerPublicKey)) {
      throw new FedsimError(ErrorCode.BAD_SIGNATURE, "envelope signature does not verify for this client");
    }
    this.seen.add(replayKey);
    return checked;
  }

  private async decrypt(envelope: Envelope, signerPublicKey: Uint8Array): Promise<Uint8Array> {
    const { round, nonce, senderBoxPublicKey, chunks } = envelope;
    const key = nacl.box.before(senderBoxPublicKey, this.secretKey);
    let opened: Awaited<ReturnType<typeof runChunkJobs>>;
    try {
      opened = await runChunkJobs(
        chunks.map((chunk, index) => ({
          op: "open",
          key,
          nonce: chunkNonce(nonce, index, chunks.length),
          data: chunk.slice(),
        })),
      );
    } finally {
      key.fill(0);
    }
    const failed = opened.indexOf(null);
    if (failed >= 0) {
      for (const chunk of opened) chunk?.bytes.fill(0);
      throw new FedsimError(
        ErrorCode.DECRYPT_FAILED,
        `envelope chunk ${failed} of ${chunks.length} does not decrypt with the round ${round} key ` +
          "(sealed to another round's key, or chunks tampered with, reordered, dropped, duplicated or " +
          "taken from another envelope)",
      );
    }
    const inner = new Uint8Array(opened.reduce((sum, chunk) => sum + chunk!.bytes.length, 0));
    let at = 0;
    for (const chunk of opened) {
      inner.set(chunk!.bytes, at);
      at += chunk!.bytes.length;
      chunk!.bytes.fill(0);
    }
    if (
      inner.length < SIGN_PUBLIC_KEY_BYTES ||
      !equalBytes(inner.subarray(0, SIGN_PUBLIC_KEY_BYTES), signerPublicKey)
    ) {
      inner.fill(0);
      throw new FedsimError(
        ErrorCode.BAD_SIGNATURE,
        "envelope was sealed by another identity than the one that signed it",
      );
    }
    if (this.closed) {
      inner.fill(0);
      throw new FedsimError(
        ErrorCode.STALE_ROUND,
        `round ${this.round} closed while its envelope was opened`,
      );
    }
    return inner.subarray(SIGN_PUBLIC_KEY_BYTES);
  }
}

/** Bytes an envelope puts on the wire for its update: the sum of its chunks (format 1: its ciphertext). */
export function sealedBytes(envelope: { chunks?: readonly Uint8Array[]; ciphertext?: Uint8Array }): number {
  if (envelope.chunks) return envelope.chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0);
  return envelope.ciphertext?.byteLength ?? 0;
}

/** Chunk i of n: the envelope nonce || u32be i || u32be n, the 24-byte secretbox nonce. */
export function chunkNonce(nonce: Uint8Array, index: number, count: number): Uint8Array {
  const out = new Uint8Array(nacl.secretbox.nonceLength);
  out.set(nonce, 0);
  const view = new DataView(out.buffer);
  view.setUint32(ENVELOPE_NONCE_BYTES, index);
  view.setUint32(ENVELOPE_NONCE_BYTES + 4, count);
  return out;
}

/** SHA-256 of one sealed chunk, as it travels. */
export function chunkHash(chunk: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(chunk).digest());
}

/**
 * What the signature covers: sha512("fedsim-envelope-v2" || u32be round || nonce ||
 * senderBoxPublicKey || u32be chunk count || sha256(chunk 0) || … || sha256(chunk n−1)).
 * Every field after the fixed prefix has a fixed length, so the concatenation is unambiguous.
 */
export function envelopeDigest(
  header: { round: number; nonce: Uint8Array; senderBoxPublicKey: Uint8Array },
  chunkHashes: readonly Uint8Array[],
): Uint8Array {
  const fixed = Buffer.alloc(8);
  fixed.writeUInt32BE(header.round, 0);
  fixed.writeUInt32BE(chunkHashes.length, 4);
  const hash = createHash("sha512")
    .update(ENVELOPE_DOMAIN)
    .update(fixed.subarray(0, 4))
    .update(header.nonce)
    .update(header.senderBoxPublicKey)
    .update(fixed.subarray(4));
  for (const chunk of chunkHashes) hash.update(chunk);
  const digest = hash.digest();
  return new Uint8Array(digest.buffer, digest.byteOffset, digest.byteLength);
}

/**
 * Format 1 (one nacl.box over the whole update, no `version` field) is refused rather than opened:
 * client and coordinator ship together, so only an out-of-date client sends it, and keeping its
 * single-threaded path would keep a second way in for one security property.
 */
function requireFormat(envelope: unknown): void {
  if (envelope === null || typeof envelope !== "object") return; // the shape check says why
  const version = (envelope as { version?: unknown }).version;
  if (version === undefined && "ciphertext" in envelope) {
    throw new FedsimError(
      ErrorCode.PROTOCOL_VERSION,
      `envelope format 1 (one nacl.box) is no longer accepted; this coordinator opens format ${ENVELOPE_VERSION} (chunked): update the client`,
    );
  }
  if (typeof version === "number" && version !== ENVELOPE_VERSION) {
    throw new FedsimError(
      ErrorCode.PROTOCOL_VERSION,
      `envelope format ${version} is not supported; this coordinator opens format ${ENVELOPE_VERSION}`,
    );
  }
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
