import { describe, expect, it } from "vitest";
import { partitionIndices } from "../common/data/partition.js";
import { packedPartition, sampleDistinct, sampledPartition } from "../common/data/partition-table.js";
import { ErrorCode } from "../common/errors.js";
import { expectError } from "./helpers/expect-error.js";

const labels = Int32Array.from({ length: 200 }, (_, i) => i % 10);

describe("partition tables", () => {
  it("a packed partition holds exactly what partitionIndices gives each client", () => {
    for (const scheme of [
      { kind: "iid" },
      { kind: "shards", shardsPerClient: 2 },
      { kind: "dirichlet", alpha: 0.5 },
    ] as const) {
      const parts = partitionIndices(labels, 7, scheme, 3);
      const table = packedPartition(labels, 7, scheme, 3);
      expect(Array.from({ length: 7 }, (_, c) => Array.from(table.indicesOf(c)))).toEqual(
        parts.map((p) => Array.from(p)),
      );
      expect(table.maxSize()).toBe(Math.max(...parts.map((p) => p.length)));
      expect(table.sizeOf(2)).toBe(parts[2].length);
      expect(table.bytes).toBe(4 * (8 + 200));
    }
  });

  it("a sampled partition gives each of more clients than examples its own seeded, distinct, sorted sample", () => {
    const table = sampledPartition(50, 100_000, 20, 9);
    expect(table.bytes).toBe(0);
    const a = table.indicesOf(99_999);
    expect(a).toHaveLength(20);
    expect(new Set(a).size).toBe(20);
    expect(Array.from(a)).toEqual(Array.from(a).sort((x, y) => x - y));
    expect(a.every((i) => i >= 0 && i < 50)).toBe(true);
    expect(Array.from(sampledPartition(50, 100_000, 20, 9).indicesOf(99_999))).toEqual(Array.from(a));
    expect(Array.from(table.indicesOf(5))).not.toEqual(Array.from(a));
    expect(Array.from(sampledPartition(50, 100_000, 20, 10).indicesOf(99_999))).not.toEqual(Array.from(a));
    expect(Array.from(sampledPartition(20, 3, 20, 1).indicesOf(1))).toEqual(
      Array.from({ length: 20 }, (_, i) => i),
    );
  });

  it("draws every example about equally often", () => {
    const counts = new Int32Array(10);
    for (let s = 0; s < 5000; s++) for (const i of sampleDistinct(10, 3, s)) counts[i]++;
    for (const c of counts) expect(Math.abs(c - 1500)).toBeLessThan(150);
  });

  it("refuses a sample larger than the data and clients outside the table", () => {
    expectError(() => sampledPartition(10, 5, 11, 0), ErrorCode.INVALID_CONFIG, "sample size");
    expectError(() => sampledPartition(10, 5, 2, 0).indicesOf(5), ErrorCode.INVALID_CONFIG, "outside [0, 5)");
    expectError(() => packedPartition(labels, 4, { kind: "iid" }, 0).sizeOf(-1), ErrorCode.INVALID_CONFIG);
  });
});
