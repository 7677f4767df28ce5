import { describe, expect, it } from "vitest";
import { combineShares, splitSecret } from "../common/crypto/secagg/index.js";
import { ErrorCode } from "../common/errors.js";

function subsets<T>(items: T[], size: number): T[][] {
  if (size === 0) return [[]];
  if (items.length < size) return [];
  const [first, ...rest] = items;
  return [...subsets(rest, size - 1).map((s) => [first, ...s]), ...subsets(rest, size)];
}

const secret = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);

describe("splitSecret / combineShares", () => {
  it("any t of n shares reconstruct the secret; any t−1 do not", async () => {
    const shares = await splitSecret(secret, 6, 4);
    expect(shares).toHaveLength(6);
    for (const share of shares) expect(share).toHaveLength(33);
    for (const subset of subsets(shares, 4)) expect(await combineShares(subset)).toEqual(secret);
    for (const subset of subsets(shares, 5)) expect(await combineShares(subset)).toEqual(secret);
    for (const subset of subsets(shares, 3)) expect(await combineShares(subset)).not.toEqual(secret);
  });

  it("handles the field's limits: 255 shares, threshold 2", async () => {
    const many = await splitSecret(secret, 255, 170);
    expect(await combineShares(many.slice(85))).toEqual(secret);
    const pair = await splitSecret(secret, 2, 2);
    expect(await combineShares(pair)).toEqual(secret);
  });

  it("accepts Node Buffers (what Socket.IO delivers) on both sides", async () => {
    const shares = await splitSecret(Buffer.from(secret), 3, 2);
    expect(await combineShares(shares.map((s) => Buffer.from(s)))).toEqual(secret);
  });

  it("rejects parameters outside the field's limits with typed errors", async () => {
    const invalid = expect.objectContaining({ code: ErrorCode.INVALID_CONFIG });
    await expect(splitSecret(secret, 256, 3)).rejects.toThrow(invalid);
    await expect(splitSecret(secret, 5, 1)).rejects.toThrow(invalid);
    await expect(splitSecret(secret, 5, 6)).rejects.toThrow(/threshold/);
    await expect(splitSecret(new Uint8Array(0), 5, 3)).rejects.toThrow(/secret/);
  });

  it("refuses too few, duplicated or mismatched shares", async () => {
    const shares = await splitSecret(secret, 5, 3);
    await expect(combineShares(shares.slice(0, 1))).rejects.toThrow(
      expect.objectContaining({ code: ErrorCode.SECAGG_THRESHOLD }),
    );
    const bad = expect.objectContaining({ code: ErrorCode.BAD_PAYLOAD });
    await expect(combineShares([shares[0], shares[0], shares[1]])).rejects.toThrow(bad);
    await expect(combineShares([shares[0], shares[1].subarray(1)])).rejects.toThrow(bad);
    const zeroX = shares[2].slice();
    zeroX[zeroX.length - 1] = 0;
    await expect(combineShares([shares[0], zeroX])).rejects.toThrow(bad);
  });
});
