import nacl from "tweetnacl";
import { z } from "zod";
import { ErrorCode, FedsimError } from "../../errors.js";
import { safeParseUntrusted } from "../../protocol.js";
import { MAX_SHARES } from "./shamir.js";

/**
 * The SecAgg messages, as plain objects of numbers, strings and Uint8Arrays (Socket.IO carries
 * them as-is; Node Buffers are Uint8Arrays, so received binaries pass these schemas). Every message
 * carries the session's round. Server→client messages name their `recipient`; client→server ones
 * carry `clientId`, which the server checks against the transport's authenticated identity.
 */

export const KEY_BYTES = nacl.box.publicKeyLength; // 32: X25519
export const NONCE_BYTES = nacl.box.nonceLength; // 24
/** A share of a 32-byte secret: 32 y-bytes and the x-coordinate. */
export const SHARE_BYTES = 33;
const MAX_ROUND = 0xffff_ffff;
const MAX_CLIENT_ID_CHARS = 256;
const MAX_NEIGHBOURS = MAX_SHARES - 1;
/** round + two length-prefixed ids (UTF-8 can take 3 bytes per UTF-16 unit) + two shares. */
const MAX_SHARE_PLAINTEXT_BYTES = 4 + 2 * (2 + 3 * MAX_CLIENT_ID_CHARS) + 2 * (2 + SHARE_BYTES);

/**
 * z.instanceof(Uint8Array), typed as a Uint8Array over any buffer: nacl, node:crypto and received
 * Buffers all hand out Uint8Array<ArrayBufferLike>.
 */
function bytes(): z.ZodType<Uint8Array> {
  return z.instanceof(Uint8Array) as z.ZodType<Uint8Array>;
}

function bytesOfLength(name: string, length: number) {
  return bytes().refine((b) => b.length === length, { error: `${name} must be ${length} bytes` });
}

const roundSchema = z.number().int().min(0).max(MAX_ROUND);
export const clientIdSchema = z.string().min(1).max(MAX_CLIENT_ID_CHARS);
const clientIdListSchema = z.array(clientIdSchema).max(MAX_SHARES);

export const publicKeysSchema = z.object({
  clientId: clientIdSchema,
  /** X25519 key for encrypting the Shamir shares sent to this client. */
  cPublicKey: bytesOfLength("cPublicKey", KEY_BYTES),
  /** X25519 key for agreeing pairwise mask seeds with this client. */
  sPublicKey: bytesOfLength("sPublicKey", KEY_BYTES),
});
export type PublicKeys = z.infer<typeof publicKeysSchema>;

/** Round 0, client → server. */
export const advertiseKeysSchema = publicKeysSchema.extend({ round: roundSchema });
export type AdvertiseKeysMessage = z.infer<typeof advertiseKeysSchema>;

/** Round 0 → 1, server → each client: the keys of its neighbours that advertised. */
export const neighbourKeysSchema = z.object({
  round: roundSchema,
  recipient: clientIdSchema,
  /** Shamir threshold t over the recipient's share holders (itself and these neighbours). */
  threshold: z.number().int().min(2).max(MAX_SHARES),
  neighbours: z.array(publicKeysSchema).max(MAX_NEIGHBOURS),
});
export type NeighbourKeysMessage = z.infer<typeof neighbourKeysSchema>;

/** One nacl.box from `from` to `to`, holding from's shares of its mask key and self-mask seed. */
export const encryptedShareSchema = z.object({
  from: clientIdSchema,
  to: clientIdSchema,
  nonce: bytesOfLength("nonce", NONCE_BYTES),
  ciphertext: bytes().refine(
    (b) => b.length > nacl.box.overheadLength && b.length <= MAX_SHARE_PLAINTEXT_BYTES + 16,
    {
      error: "ciphertext has an impossible length",
    },
  ),
});
export type EncryptedShare = z.infer<typeof encryptedShareSchema>;

/** Round 1, client → server: one encrypted share per neighbour. */
export const shareKeysSchema = z.object({
  round: roundSchema,
  clientId: clientIdSchema,
  shares: z.array(encryptedShareSchema).max(MAX_NEIGHBOURS),
});
export type ShareKeysMessage = z.infer<typeof shareKeysSchema>;

/** Round 1 → 2, server → each client: the ciphertexts addressed to it (senders form U1). */
export const routedSharesSchema = z.object({
  round: roundSchema,
  recipient: clientIdSchema,
  shares: z.array(encryptedShareSchema).max(MAX_NEIGHBOURS),
});
export type RoutedSharesMessage = z.infer<typeof routedSharesSchema>;

/** Round 2, client → server: the masked vector as little-endian uint32 bytes. */
export const maskedInputSchema = z.object({
  round: roundSchema,
  clientId: clientIdSchema,
  masked: bytes().refine((b) => b.length > 0 && b.length % 4 === 0, {
    error: "masked must be a non-empty multiple of 4 bytes",
  }),
});
export type MaskedInputMessage = z.infer<typeof maskedInputSchema>;

/**
 * Round 2 → 3, server → each survivor: how each of the recipient's share holders ended round 2.
 * `survived` (U2) includes the recipient itself; `dropped` are in U1 but not U2.
 */
export const unmaskRequestSchema = z.object({
  round: roundSchema,
  recipient: clientIdSchema,
  dropped: clientIdListSchema,
  survived: clientIdListSchema,
});
export type UnmaskRequestMessage = z.infer<typeof unmaskRequestSchema>;

export const revealedShareSchema = z.object({
  /** Whose secret this is a share of. */
  owner: clientIdSchema,
  share: bytesOfLength("share", SHARE_BYTES),
});
export type RevealedShare = z.infer<typeof revealedShareSchema>;

/** Round 3, client → server: seed shares of survivors, mask-key shares of dropped clients. */
export const unmaskResponseSchema = z.object({
  round: roundSchema,
  clientId: clientIdSchema,
  seedShares: z.array(revealedShareSchema).max(MAX_SHARES),
  secretKeyShares: z.array(revealedShareSchema).max(MAX_SHARES),
});
export type UnmaskResponseMessage = z.infer<typeof unmaskResponseSchema>;

/** Parses an incoming message, turning zod issues into one BAD_PAYLOAD error with one line each. */
export function parseMessage<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const result = safeParseUntrusted(schema, value);
  if (!result.success) {
    const details = result.error.issues.map(
      (issue) => `${issue.path.join(".") || "(root)"}: ${issue.message}`,
    );
    throw new FedsimError(ErrorCode.BAD_PAYLOAD, `malformed ${what} message`, details.slice(0, 20));
  }
  return result.data;
}

/** A zero-copy byte view of a masked vector, ready for the wire. */
export function vectorToBytes(vector: Uint32Array): Uint8Array {
  return new Uint8Array(vector.buffer, vector.byteOffset, vector.byteLength);
}

/**
 * A Uint32Array over received bytes: a view when aligned, otherwise a copy (Socket.IO hands out
 * Buffers that may start at any offset of a shared pool).
 */
export function bytesToVector(bytes: Uint8Array): Uint32Array {
  if (bytes.length % 4 !== 0) {
    throw new FedsimError(
      ErrorCode.BAD_SHAPE,
      `masked vector has ${bytes.length} bytes, not a multiple of 4`,
    );
  }
  if (bytes.byteOffset % 4 === 0) return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  return new Uint32Array(new Uint8Array(bytes).buffer);
}

/** What a client seals for one neighbour (Bonawitz et al.: i ‖ j ‖ share of s_sk ‖ share of b). */
export interface SharePlaintext {
  round: number;
  from: string;
  to: string;
  secretKeyShare: Uint8Array;
  seedShare: Uint8Array;
}

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder("utf-8", { fatal: true });

/** u32 round, then u16-length-prefixed from, to, secretKeyShare, seedShare (little-endian). */
export function encodeSharePlaintext(plain: SharePlaintext): Uint8Array {
  const parts = [utf8.encode(plain.from), utf8.encode(plain.to), plain.secretKeyShare, plain.seedShare];
  const out = new Uint8Array(4 + parts.reduce((n, p) => n + 2 + p.length, 0));
  const view = new DataView(out.buffer);
  view.setUint32(0, plain.round, true);
  let offset = 4;
  for (const part of parts) {
    view.setUint16(offset, part.length, true);
    out.set(part, offset + 2);
    offset += 2 + part.length;
  }
  return out;
}

export function decodeSharePlaintext(bytes: Uint8Array): SharePlaintext {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (): never => {
    throw new FedsimError(ErrorCode.SECAGG_PROTOCOL, "decrypted share has a malformed layout");
  };
  if (bytes.length < 4) fail();
  const parts: Uint8Array[] = [];
  let offset = 4;
  for (let i = 0; i < 4; i++) {
    if (offset + 2 > bytes.length) fail();
    const length = view.getUint16(offset, true);
    if (offset + 2 + length > bytes.length) fail();
    parts.push(bytes.slice(offset + 2, offset + 2 + length));
    offset += 2 + length;
  }
  if (offset !== bytes.length || parts[2].length !== SHARE_BYTES || parts[3].length !== SHARE_BYTES) fail();
  let from = "";
  let to = "";
  try {
    from = utf8Decoder.decode(parts[0]);
    to = utf8Decoder.decode(parts[1]);
  } catch {
    fail();
  }
  return { round: view.getUint32(0, true), from, to, secretKeyShare: parts[2], seedShare: parts[3] };
}
