import { describe, expect, it } from "vitest";
import { quantize } from "../common/crypto/secagg/quantize.js";
import { ErrorCode } from "../common/errors.js";
import { createRng } from "../common/rng.js";
import { weightedMean } from "../common/strategy/aggregate.js";
import { addPartialSums, maskedSum, partialSum } from "../common/strategy/partial-sum.js";
import { expectError } from "./helpers/expect-error.js";

function randomVectors(count: number, length: number, seed: number): Float32Array[] {
  const rng = createRng(seed);
  return Array.from({ length: count }, () => Float32Array.from({ length }, () => (rng.next() - 0.5) * 1e-2));
}

describe("partial sums (hierarchical aggregation)", () => {
  it("edges' partial sums over a split of the clients give the coordinator's weighted mean", () => {
    const vectors = randomVectors(10, 257, 3);
    const weights = [5, 60, 1, 33, 600, 2, 17, 8, 90, 41];
    const mean = weightedMean(vectors, weights);
    // Three edges holding 3, 4 and 3 clients.
    const parts = [
      partialSum(vectors.slice(0, 3), weights.slice(0, 3)),
      partialSum(vectors.slice(3, 7), weights.slice(3, 7)),
      partialSum(vectors.slice(7), weights.slice(7)),
    ];
    const total = addPartialSums(parts);
    expect(total.count).toBe(10);
    expect(total.totalWeight).toBe(weights.reduce((a, b) => a + b, 0));
    for (let i = 0; i < mean.length; i++) {
      expect(total.sum[i] / total.totalWeight).toBeCloseTo(mean[i], 7);
    }
  });

  it("a sum by hand: 2·[1, 2] + 3·[−1, 4] = [−1, 16], weight 5", () => {
    const part = partialSum([Float32Array.of(1, 2), Float32Array.of(-1, 4)], [2, 3]);
    expect([...part.sum]).toEqual([-1, 16]);
    expect(part.totalWeight).toBe(5);
    expect(part.count).toBe(2);
  });

  it("refuses vectors of other lengths, bad weights and bad partial sums with codes", () => {
    expectError(() => partialSum([new Float32Array(3), new Float32Array(4)], [1, 1]), ErrorCode.BAD_SHAPE);
    expectError(() => partialSum([new Float32Array(3)], [Number.NaN]), ErrorCode.INVALID_CONFIG);
    expectError(() => partialSum([new Float32Array(3)], [-1]), ErrorCode.INVALID_CONFIG);
    expectError(() => partialSum([], []), ErrorCode.INVALID_CONFIG);
    const good = { sum: new Float32Array(3), totalWeight: 1, count: 1 };
    expectError(() => addPartialSums([good, { ...good, sum: new Float32Array(2) }]), ErrorCode.BAD_SHAPE);
    expectError(
      () => addPartialSums([good, { ...good, totalWeight: Number.POSITIVE_INFINITY }]),
      ErrorCode.BAD_AGGREGATE,
    );
    expectError(() => addPartialSums([good, { ...good, count: 1.5 }]), ErrorCode.BAD_AGGREGATE);
  });

  it("masked vectors summed per edge mod 2^32 give the words of one sum over all clients", () => {
    const rng = createRng(9);
    const vectors = Array.from({ length: 7 }, () =>
      Uint32Array.from({ length: 64 }, () => Math.floor(rng.next() * 2 ** 32)),
    );
    const all = maskedSum(vectors);
    const byEdge = maskedSum([
      maskedSum(vectors.slice(0, 2)),
      maskedSum(vectors.slice(2, 5)),
      maskedSum(vectors.slice(5)),
    ]);
    expect([...byEdge]).toEqual([...all]);
    // Wraps: 2^32 − 1 + 2 = 1 (mod 2^32).
    expect([...maskedSum([Uint32Array.of(2 ** 32 - 1), Uint32Array.of(2)])]).toEqual([1]);
    expectError(() => maskedSum([new Uint32Array(2), new Uint32Array(3)]), ErrorCode.BAD_SHAPE);
  });

  it("quantised values summed through edges dequantise like the direct sum", () => {
    const values = randomVectors(4, 16, 5);
    const options = { clipRange: 1, scale: 2 ** 20 };
    const q = values.map((v) => quantize(v, options));
    expect([...maskedSum([maskedSum(q.slice(0, 1)), maskedSum(q.slice(1))])]).toEqual([...maskedSum(q)]);
  });
});
