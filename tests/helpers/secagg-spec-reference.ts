import { createCipheriv, createHash } from "node:crypto";
import nacl from "tweetnacl";

/**
 * SecAgg's client-side primitives written again from docs/SECAGG.md ("On the wire") alone, with
 * node:crypto and tweetnacl and nothing from fedsim: the proof that the spec is enough to build an
 * interoperable client. tests/secagg-vectors.test.ts checks these against the committed vectors.
 * Deliberately different code paths from common/crypto/secagg where the spec allows it (tweetnacl's
 * scalarMult instead of OpenSSL's X25519, explicit little-endian reads, table-based GF(2^8)).
 */

const SHARE_KEY_DOMAIN = Buffer.from("fedsim-secagg-share-key-v1", "ascii");

export const x25519 = (secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array =>
  nacl.scalarMult(secretKey, publicKey);

export const publicKeyOf = (secretKey: Uint8Array): Uint8Array => nacl.scalarMult.base(secretKey);

const sha256 = (...parts: Uint8Array[]): Uint8Array => {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest());
};

/** Key for sealing Shamir shares between i and j: SHA-256(domain ‖ X25519(c_sk_i, c_pk_j)). */
export const shareKey = (cSecretKey: Uint8Array, cPublicKey: Uint8Array): Uint8Array =>
  sha256(SHARE_KEY_DOMAIN, x25519(cSecretKey, cPublicKey));

/** Pairwise mask seed: SHA-256(X25519(s_sk_i, s_pk_j)), no domain prefix. */
export const maskSeed = (sSecretKey: Uint8Array, sPublicKey: Uint8Array): Uint8Array =>
  sha256(x25519(sSecretKey, sPublicKey));

/** PRG(seed): ChaCha20 keystream, key = seed, counter 0, nonce 0, as little-endian uint32 words. */
export function prg(seed: Uint8Array, words: number): number[] {
  const stream = createCipheriv("chacha20", seed, Buffer.alloc(16)).update(Buffer.alloc(4 * words));
  return Array.from({ length: words }, (_, i) => stream.readUInt32LE(4 * i));
}

/** +1 when `self` sorts before `other` by UTF-16 code units, else −1. */
export const sign = (self: string, other: string): 1 | -1 => (self < other ? 1 : -1);

export interface FitSecAgg {
  clipRange: number;
  scale: number;
  weighted: boolean;
  maxWeight: number;
}

/** [w·clamp(Δ), w] in float32, then round-half-up(v·scale) clamped to ±floor(clipRange·maxWeight·scale), mod 2^32. */
export function quantizeUpdate(
  delta: number[],
  numExamples: number,
  config: FitSecAgg,
): { encoded: number[]; words: number[] } {
  const w = config.weighted ? Math.min(numExamples, config.maxWeight) : 1;
  const c = config.clipRange;
  const encoded = [
    ...delta.map((d) => Math.fround(w * Math.min(c, Math.max(-c, Math.fround(d))))),
    Math.fround(w),
  ];
  const maxQ = Math.floor(c * config.maxWeight * config.scale);
  const words = encoded.map((v) => {
    const x = v * config.scale;
    let q = Math.floor(x);
    if (x - q >= 0.5) q += 1; // ties go up: 0.5 → 1, −0.5 → 0, −1.5 → −1
    q = Math.max(-maxQ, Math.min(maxQ, q));
    return ((q % 2 ** 32) + 2 ** 32) % 2 ** 32;
  });
  return { encoded, words };
}

/** y = x + PRG(b) + Σ_j sign(i, j)·PRG(s_ij)  (mod 2^32). */
export function maskVector(
  input: number[],
  selfMaskSeed: Uint8Array,
  pairwise: { seed: Uint8Array; sign: 1 | -1 }[],
): number[] {
  const out = [...input];
  const add = (mask: number[], s: number) => {
    for (let i = 0; i < out.length; i++) out[i] = (((out[i] + s * mask[i]) % 2 ** 32) + 2 ** 32) % 2 ** 32;
  };
  add(prg(selfMaskSeed, out.length), 1);
  for (const { seed, sign } of pairwise) add(prg(seed, out.length), sign);
  return out;
}

/** Little-endian uint32 bytes of a masked vector, as fitResult.secagg.masked.masked carries it. */
export function wordsToBytes(words: number[]): Uint8Array {
  const out = Buffer.alloc(4 * words.length);
  for (const [i, w] of words.entries()) out.writeUInt32LE(w, 4 * i);
  return new Uint8Array(out);
}

/** u32le round ‖ u16le-prefixed UTF-8 from, to ‖ u16le-prefixed s_sk share, b share. */
export function sharePlaintext(
  round: number,
  from: string,
  to: string,
  secretKeyShare: Uint8Array,
  seedShare: Uint8Array,
): Uint8Array {
  const parts = [Buffer.from(from, "utf8"), Buffer.from(to, "utf8"), secretKeyShare, seedShare];
  const head = Buffer.alloc(4);
  head.writeUInt32LE(round);
  const chunks: Uint8Array[] = [head];
  for (const part of parts) {
    const length = Buffer.alloc(2);
    length.writeUInt16LE(part.length);
    chunks.push(length, part);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

export const seal = (plaintext: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array =>
  nacl.secretbox(plaintext, nonce, key);

// GF(2^8) modulo x^8 + x^4 + x^3 + x + 1, through log/exp tables over the generator 3.
const EXP = new Uint8Array(510);
const LOG = new Uint8Array(256);
for (let i = 0, x = 1; i < 255; i++) {
  EXP[i] = x;
  EXP[i + 255] = x;
  LOG[x] = i;
  x ^= (x << 1) ^ (x & 0x80 ? 0x11b : 0); // x·3 = x·2 ⊕ x
}
const mul = (a: number, b: number): number => (a === 0 || b === 0 ? 0 : EXP[LOG[a] + LOG[b]]);
const div = (a: number, b: number): number => (a === 0 ? 0 : EXP[LOG[a] + 255 - LOG[b]]);

/** Lagrange interpolation at 0 of shares laid out as y-bytes followed by the x-coordinate. */
export function combine(shares: Uint8Array[]): Uint8Array {
  const n = shares[0].length - 1;
  const xs = shares.map((s) => s[n]);
  const secret = new Uint8Array(n);
  for (let byte = 0; byte < n; byte++) {
    let value = 0;
    for (let i = 0; i < shares.length; i++) {
      let basis = 1;
      for (let j = 0; j < shares.length; j++) if (j !== i) basis = mul(basis, div(xs[j], xs[i] ^ xs[j]));
      value ^= mul(shares[i][byte], basis);
    }
    secret[byte] = value;
  }
  return secret;
}

/** Evaluates f(x) = secret + Σ_d coefficients[d−1]·x^d per byte: one share, x-coordinate last. */
export function shareAt(secret: Uint8Array, coefficients: Uint8Array[], x: number): Uint8Array {
  const share = new Uint8Array(secret.length + 1);
  for (let byte = 0; byte < secret.length; byte++) {
    let y = secret[byte];
    let power = 1;
    for (const coefficient of coefficients) {
      power = mul(power, x);
      y ^= mul(coefficient[byte], power);
    }
    share[byte] = y;
  }
  share[secret.length] = x;
  return share;
}

/** The wire form of a byte field in a `secagg` stage message. */
export const b64 = (bytes: Uint8Array): { $b64: string } => ({ $b64: Buffer.from(bytes).toString("base64") });
