import nacl from "tweetnacl";
import { describe, expect, it } from "vitest";
import {
  addMaskInPlace,
  addMasksInPlace,
  addMod,
  expandMask,
  maskSign,
  pairwiseMaskSeed,
  subMod,
  x25519,
} from "../common/crypto/secagg/index.js";
import { createRingWindow } from "../common/crypto/secagg/ring-window.js";
import { ErrorCode } from "../common/errors.js";
import { firstDifference, randomVector } from "./secagg-helpers.js";

const seedA = new Uint8Array(32).fill(7);
const seedB = new Uint8Array(32).fill(8);

describe("expandMask", () => {
  it("is ChaCha20's keystream (RFC 8439 A.1 test vector #1, zero key and nonce)", () => {
    const mask = expandMask(new Uint8Array(32), 4);
    // Keystream bytes 76 b8 e0 ad a0 f1 3d 90 40 5d 6a e5 53 86 bd 28, read little-endian.
    expect(Array.from(mask)).toEqual([0xade0b876, 0x903df1a0, 0xe56a5d40, 0x28bd8653]);
  });

  it("is deterministic per seed, differs across seeds, and longer masks extend shorter ones", () => {
    const long = expandMask(seedA, 50_000);
    expect(firstDifference(expandMask(seedA, 50_000), long)).toBe(-1);
    expect(firstDifference(expandMask(seedA, 17), long.subarray(0, 17))).toBe(-1);
    const other = expandMask(seedB, 50_000);
    let equal = 0;
    for (let i = 0; i < long.length; i++) if (long[i] === other[i]) equal++;
    expect(equal).toBeLessThan(3);
  });

  it("rejects seeds that are not 32 bytes", () => {
    expect(() => expandMask(new Uint8Array(31), 4)).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_CONFIG }),
    );
    expect(() => expandMask(seedA, -1)).toThrow(/length/);
  });
});

describe("addMaskInPlace", () => {
  it("adds the same mask as expandMask across chunk boundaries, and −1 removes it", () => {
    for (const length of [1, 16_383, 16_384, 40_001]) {
      const target = randomVector(length, length);
      const original = target.slice();
      const expected = original.slice();
      addMod(expected, expandMask(seedA, length));
      addMaskInPlace(target, seedA, 1);
      expect(firstDifference(target, expected)).toBe(-1);
      addMaskInPlace(target, seedA, -1);
      expect(firstDifference(target, original)).toBe(-1);
      const subtracted = original.slice();
      subMod(subtracted, expandMask(seedB, length));
      addMaskInPlace(original, seedB, -1);
      expect(firstDifference(original, subtracted)).toBe(-1);
    }
  });

  it("works on a subarray view without touching the rest of the buffer", () => {
    const backing = new Uint32Array(100);
    addMaskInPlace(backing.subarray(10, 20), seedA, 1);
    expect(Array.from(backing.subarray(10, 20))).toEqual(Array.from(expandMask(seedA, 10)));
    expect(backing.subarray(0, 10).every((v) => v === 0)).toBe(true);
    expect(backing.subarray(20).every((v) => v === 0)).toBe(true);
  });
});

describe("addMasksInPlace", () => {
  it("adds every term exactly as one addMaskInPlace per term would", () => {
    const seeds = Array.from({ length: 5 }, (_, k) => new Uint8Array(32).fill(20 + k));
    const signs = [1, -1, -1, 1, -1] as const;
    for (const length of [1, 5, 16_384, 16_389, 40_001]) {
      const oneByOne = randomVector(length, length);
      const fused = oneByOne.slice();
      for (const [k, seed] of seeds.entries()) addMaskInPlace(oneByOne, seed, signs[k]);
      addMasksInPlace(
        fused,
        seeds.map((seed, k) => ({ seed, sign: signs[k] })),
      );
      expect(firstDifference(fused, oneByOne)).toBe(-1);
    }
  });

  it("checks every term before touching the target", () => {
    const target = randomVector(100, 3);
    const copy = target.slice();
    expect(() =>
      addMasksInPlace(target, [
        { seed: seedA, sign: 1 },
        { seed: new Uint8Array(31), sign: 1 },
      ]),
    ).toThrow(expect.objectContaining({ code: ErrorCode.INVALID_CONFIG }));
    expect(() => addMasksInPlace(target, [{ seed: seedA, sign: 2 as 1 }])).toThrow(/sign/);
    expect(firstDifference(target, copy)).toBe(-1);
  });
});

describe("ring window (the SIMD kernel under masking and addMod)", () => {
  it("runs WebAssembly SIMD here, and it and the JavaScript fallback agree with word arithmetic", () => {
    expect(createRingWindow(16).simd).toBe(true);
    for (const simd of [true, false]) {
      const window = createRingWindow(64, { simd });
      expect(window.simd).toBe(simd);
      for (const count of [0, 1, 3, 4, 5, 63, 64]) {
        const a = randomVector(64, count + 1);
        const b = randomVector(64, count + 100);
        window.acc.set(a);
        window.operand.set(b);
        window.add(count);
        for (let i = 0; i < 64; i++) expect(window.acc[i]).toBe(i < count ? (a[i] + b[i]) >>> 0 : a[i]);
        window.acc.set(a);
        window.sub(count);
        for (let i = 0; i < 64; i++) expect(window.acc[i]).toBe(i < count ? (a[i] - b[i]) >>> 0 : a[i]);
      }
      expect(() => window.add(65)).toThrow(expect.objectContaining({ code: ErrorCode.INTERNAL }));
      window.clear();
      expect(window.acc.every((v) => v === 0) && window.operand.every((v) => v === 0)).toBe(true);
    }
  });
});

describe("pairwise key agreement", () => {
  it("native X25519 equals nacl.scalarMult", () => {
    for (let i = 0; i < 5; i++) {
      const a = nacl.box.keyPair();
      const b = nacl.box.keyPair();
      expect(x25519(a.secretKey, b.publicKey)).toEqual(nacl.scalarMult(a.secretKey, b.publicKey));
    }
  });

  it("both ends derive the same mask seed, and their signs are opposite", () => {
    const a = nacl.box.keyPair();
    const b = nacl.box.keyPair();
    const c = nacl.box.keyPair();
    const ab = pairwiseMaskSeed(a.secretKey, b.publicKey);
    expect(pairwiseMaskSeed(b.secretKey, a.publicKey)).toEqual(ab);
    expect(pairwiseMaskSeed(a.secretKey, c.publicKey)).not.toEqual(ab);
    expect(maskSign("alice", "bob")).toBe(1);
    expect(maskSign("bob", "alice")).toBe(-1);
  });

  it("refuses a low-order public key, whose shared secret would be public", () => {
    const a = nacl.box.keyPair();
    expect(() => pairwiseMaskSeed(a.secretKey, new Uint8Array(32))).toThrow(
      expect.objectContaining({ code: ErrorCode.SECAGG_PROTOCOL }),
    );
  });
});
