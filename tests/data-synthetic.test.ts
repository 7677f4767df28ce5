import { describe, expect, it } from "vitest";
import { classCounts, concatDatasets, type Dataset } from "../common/data/dataset.js";
import { partitionIndices } from "../common/data/partition.js";
import { generateSynthetic, splitDevices, syntheticTrainTest } from "../common/data/synthetic.js";
import { ErrorCode } from "../common/errors.js";

/** Total-variation distance between two devices' label distributions. */
function labelDistance(a: Dataset, b: Dataset): number {
  const pa = classCounts(a.y, 10);
  const pb = classCounts(b.y, 10);
  let d = 0;
  for (let c = 0; c < 10; c++) d += Math.abs(pa[c] / a.n - pb[c] / b.n);
  return d / 2;
}

function meanPairwiseLabelDistance(devices: Dataset[]): number {
  let total = 0;
  let pairs = 0;
  for (let i = 0; i < devices.length; i++) {
    for (let j = i + 1; j < devices.length; j++) {
      total += labelDistance(devices[i], devices[j]);
      pairs++;
    }
  }
  return total / pairs;
}

describe("generateSynthetic (FedProx Synthetic(α, β))", () => {
  const { devices } = generateSynthetic({ alpha: 1, beta: 1, seed: 7 });

  it("makes 30 devices of ≥ 50 examples with 60 finite features and labels in 0..9", () => {
    expect(devices).toHaveLength(30);
    for (const d of devices) {
      expect(d.n).toBeGreaterThanOrEqual(50);
      expect(d.exampleShape).toEqual([60]);
      expect(d.numClasses).toBe(10);
      expect(d.x.length).toBe(d.n * 60);
      expect(d.x.every(Number.isFinite)).toBe(true);
      expect(d.y.every((label) => label >= 0 && label < 10)).toBe(true);
    }
  });

  it("is deterministic by seed", () => {
    const again = generateSynthetic({ alpha: 1, beta: 1, seed: 7 }).devices;
    const other = generateSynthetic({ alpha: 1, beta: 1, seed: 8 }).devices;
    expect(again.map((d) => d.n)).toEqual(devices.map((d) => d.n));
    expect(Buffer.from(again[3].x.buffer).equals(Buffer.from(devices[3].x.buffer))).toBe(true);
    expect(Array.from(again[29].y)).toEqual(Array.from(devices[29].y));
    expect(other.map((d) => d.n)).not.toEqual(devices.map((d) => d.n));
  });

  it("has unequal, heavy-tailed sizes (lognormal(4, 2) + 50)", () => {
    const sizes = devices.map((d) => d.n).sort((a, b) => a - b);
    expect(sizes[29] / sizes[0]).toBeGreaterThan(5);
    // The median of floor(lognormal(4, 2)) is e^4 ≈ 55, so the median device is near 105.
    const median = (sizes[14] + sizes[15]) / 2;
    expect(median).toBeGreaterThan(60);
    expect(median).toBeLessThan(400);
  });

  it("gives devices different label distributions for α = β = 1, more than the IID variant", () => {
    const iid = generateSynthetic({ alpha: 1, beta: 1, seed: 7, iid: true }).devices;
    expect(iid).toHaveLength(30);
    const niidDistance = meanPairwiseLabelDistance(devices);
    const iidDistance = meanPairwiseLabelDistance(iid);
    expect(niidDistance).toBeGreaterThan(0.6);
    expect(niidDistance).toBeGreaterThan(iidDistance + 0.4);
    // Within one device, the labels are skewed: the most common class is well above 10%.
    const topShare = devices.map((d) => Math.max(...classCounts(d.y, 10)) / d.n);
    expect(topShare.reduce((a, b) => a + b, 0) / topShare.length).toBeGreaterThan(0.3);
  });

  it("keeps device k the same when numDevices changes", () => {
    const fewer = generateSynthetic({ alpha: 1, beta: 1, seed: 7, numDevices: 5 }).devices;
    expect(fewer).toHaveLength(5);
    expect(Array.from(fewer[4].y)).toEqual(Array.from(devices[4].y));
  });

  it("refuses invalid parameters naming them", () => {
    expect(() => generateSynthetic({ alpha: -1, beta: 1, seed: 1 })).toThrow(/alpha/);
    expect(() => generateSynthetic({ alpha: 1, beta: Number.NaN, seed: 1 })).toThrow(/beta/);
    expect(() => generateSynthetic({ alpha: 1, beta: 1, seed: 1, numDevices: 0 })).toThrow(
      expect.objectContaining({
        code: ErrorCode.INVALID_CONFIG,
        message: expect.stringMatching(/numDevices/),
      }),
    );
  });
});

describe("splitting and concatenating devices", () => {
  it("splits each device 80/20 and concatenates with device groups", () => {
    const { devices } = generateSynthetic({ alpha: 0.5, beta: 0.5, seed: 3, numDevices: 6 });
    const { train, test } = splitDevices(devices, { seed: 1 });
    devices.forEach((d, k) => {
      expect(train[k].n + test[k].n).toBe(d.n);
      expect(train[k].n).toBe(Math.floor(0.8 * d.n));
    });
    const allTest = concatDatasets(test, "test", [0, 1, 2, 3, 4, 5]);
    expect(allTest.n).toBe(test.reduce((s, t) => s + t.n, 0));
    expect(allTest.groups![0]).toBe(0);
    expect(allTest.groups![allTest.n - 1]).toBe(5);
    // Row 0 of device 2's test set sits right after devices 0 and 1.
    const offset = test[0].n + test[1].n;
    expect(Array.from(allTest.x.subarray(offset * 60, offset * 60 + 60))).toEqual(
      Array.from(test[2].x.subarray(0, 60)),
    );
  });

  it("syntheticTrainTest feeds the natural partition: client k holds device k", () => {
    const { train, test } = syntheticTrainTest({ alpha: 1, beta: 1, seed: 11, numDevices: 8 });
    const { devices } = generateSynthetic({ alpha: 1, beta: 1, seed: 11, numDevices: 8 });
    expect(train.n + test.n).toBe(devices.reduce((s, d) => s + d.n, 0));
    expect(train.groups).toBeDefined();
    const parts = partitionIndices(train.y, 8, { kind: "natural" }, 0, train.groups);
    parts.forEach((part, k) => {
      expect(part.length).toBe(Math.floor(0.8 * devices[k].n));
      expect(part.every((i) => train.groups![i] === k)).toBe(true);
    });
  });
});
