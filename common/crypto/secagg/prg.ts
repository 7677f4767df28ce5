import { createCipheriv } from "node:crypto";
import { ErrorCode, FedsimError } from "../../errors.js";
import { sharedRingWindow } from "./ring-window.js";

/**
 * Mask expansion: a 32-byte seed becomes a pseudo-random vector in (Z/2^32)^length, the ChaCha20
 * keystream (key = seed, 16-byte all-zero IV: counter 0, nonce 0) read as little-endian uint32.
 * Node's OpenSSL ChaCha20 runs near memory speed (MEASURED.md: ~860 MB/s), far faster than any JS
 * PRG. Every seed is used for one mask only (fresh keys each round), so a fixed IV is safe.
 *
 * The client and the server must expand the same seed to the same vector: keep this function the
 * single definition of the PRG, and never change the keystream layout without a protocol version.
 */

export const SEED_BYTES = 32;
/** 64 KiB of keystream per step: small enough to stay in cache, large enough to amortise calls. */
const CHUNK_WORDS = 16_384;
const ZERO_CHUNK = Buffer.alloc(CHUNK_WORDS * 4);
const ZERO_IV = Buffer.alloc(16);
const IS_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** The full mask as a new Uint32Array. Prefer addMaskInPlace for model-sized vectors. */
export function expandMask(seed: Uint8Array, length: number): Uint32Array {
  requireLength(length);
  const out = new Uint32Array(length);
  const outBytes = new Uint8Array(out.buffer);
  const cipher = keystream(seed);
  for (let word = 0; word < length; word += CHUNK_WORDS) {
    const words = Math.min(CHUNK_WORDS, length - word);
    outBytes.set(cipher.update(ZERO_CHUNK.subarray(0, words * 4)), word * 4);
  }
  cipher.final();
  return out;
}

/** One term of a masking sum: sign·PRG(seed). */
export interface MaskTerm {
  seed: Uint8Array;
  sign: 1 | -1;
}

/** target += sign·PRG(seed) mod 2^32; see addMasksInPlace. */
export function addMaskInPlace(target: Uint32Array, seed: Uint8Array, sign: 1 | -1): void {
  addMasksInPlace(target, [{ seed, sign }]);
}

/**
 * target += Σ sign·PRG(seed) mod 2^32 over all terms, 64 KiB of the target at a time: each slice
 * of the target stays in cache while every term's keystream is added to it, so masking with k
 * seeds reads and writes the model-sized vector once instead of k times, and never allocates a
 * second model-sized array. Addition mod 2^32 commutes, so the result is exactly that of adding
 * the masks one by one.
 */
export function addMasksInPlace(target: Uint32Array, terms: readonly MaskTerm[]): void {
  for (const { sign } of terms) {
    if (sign !== 1 && sign !== -1) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `sign must be 1 or -1 (got ${sign})`);
    }
  }
  const ciphers = terms.map((term) => keystream(term.seed));
  if (ciphers.length === 0 || target.length === 0) return;
  const window = sharedRingWindow(CHUNK_WORDS);
  try {
    for (let start = 0; start < target.length; start += CHUNK_WORDS) {
      const words = Math.min(CHUNK_WORDS, target.length - start);
      window.acc.set(target.subarray(start, start + words));
      for (let k = 0; k < ciphers.length; k++) {
        window.operandBytes.set(ciphers[k].update(ZERO_CHUNK.subarray(0, words * 4)));
        if (terms[k].sign === 1) window.add(words);
        else window.sub(words);
      }
      target.set(window.acc.subarray(0, words), start);
    }
  } finally {
    for (const cipher of ciphers) cipher.final();
    window.clear();
  }
}

function keystream(seed: Uint8Array) {
  if (!IS_LITTLE_ENDIAN) {
    // The mask must be the same on every machine; a big-endian host would read other words.
    throw new FedsimError(ErrorCode.INTERNAL, "SecAgg mask expansion requires a little-endian host");
  }
  if (!(seed instanceof Uint8Array) || seed.length !== SEED_BYTES) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `seed must be ${SEED_BYTES} bytes`);
  }
  return createCipheriv("chacha20", seed, ZERO_IV);
}

function requireLength(length: number): void {
  if (!Number.isInteger(length) || length < 0) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `length must be a non-negative integer (got ${length})`);
  }
}
