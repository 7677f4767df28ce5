import { describe, expect, it } from "vitest";
import { classCounts, type Dataset, holdOut } from "../common/data/dataset.js";
import {
  type PartitionScheme,
  parsePartitionSpec,
  partitionDataset,
  partitionIndices,
  sampleDirichlet,
} from "../common/data/partition.js";
import { ErrorCode, FedsimError } from "../common/errors.js";
import { createRng, shuffleInPlace } from "../common/rng.js";

/** MNIST-like labels: 10 classes of 600, in a shuffled order. */
function mnistLikeLabels(n = 6000, seed = 1): Int32Array {
  const labels = Int32Array.from({ length: n }, (_, i) => i % 10);
  shuffleInPlace(labels, createRng(seed));
  return labels;
}

function expectDisjointFullCover(parts: Int32Array[], n: number): void {
  const owner = new Int32Array(n).fill(-1);
  parts.forEach((part, c) => {
    for (const i of part) {
      if (!(i >= 0 && i < n)) throw new Error(`client ${c} holds index ${i}, outside [0, ${n})`);
      if (owner[i] !== -1) throw new Error(`example ${i} is in clients ${owner[i]} and ${c}`);
      owner[i] = c;
    }
  });
  expect(owner.indexOf(-1)).toBe(-1);
}

function sameParts(a: Int32Array[], b: Int32Array[]): boolean {
  return (
    a.length === b.length && a.every((part, c) => Buffer.from(part.buffer).equals(Buffer.from(b[c].buffer)))
  );
}

function distinctLabels(labels: Int32Array, part: Int32Array): number {
  return new Set(Array.from(part, (i) => labels[i])).size;
}

/** Mean over clients of the entropy (nats) of the client's label distribution. */
function meanLabelEntropy(labels: Int32Array, parts: Int32Array[]): number {
  let total = 0;
  for (const part of parts) {
    const counts = classCounts(
      Array.from(part, (i) => labels[i]),
      10,
    );
    let h = 0;
    for (const c of counts) if (c > 0) h -= (c / part.length) * Math.log(c / part.length);
    total += h;
  }
  return total / parts.length;
}

function expectCode(fn: () => unknown, code: string, messagePart: RegExp): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FedsimError);
    expect((err as FedsimError).code).toBe(code);
    expect((err as FedsimError).message).toMatch(messagePart);
    return;
  }
  throw new Error("expected a FedsimError");
}

const labels = mnistLikeLabels();
const n = labels.length;
const groups = Int32Array.from({ length: n }, (_, i) => (i * 7) % 13); // 13 groups, uneven order

const schemes: { scheme: PartitionScheme; clients: number }[] = [
  { scheme: { kind: "iid" }, clients: 7 },
  { scheme: { kind: "shards", shardsPerClient: 2 }, clients: 30 },
  { scheme: { kind: "dirichlet", alpha: 0.5 }, clients: 10 },
  { scheme: { kind: "powerlaw" }, clients: 20 },
  { scheme: { kind: "natural" }, clients: 5 },
];

describe("partitionIndices: properties shared by every scheme", () => {
  for (const { scheme, clients } of schemes) {
    describe(scheme.kind, () => {
      const parts = partitionIndices(labels, clients, scheme, 42, groups);

      it("is disjoint, covers every example, and sorts each client's indices", () => {
        expect(parts).toHaveLength(clients);
        expectDisjointFullCover(parts, n);
        for (const part of parts) {
          expect(part.length).toBeGreaterThan(0);
          expect(part.every((v, i) => i === 0 || v > part[i - 1])).toBe(true);
        }
      });

      it("is deterministic for a seed, and the seed matters", () => {
        expect(sameParts(partitionIndices(labels, clients, scheme, 42, groups), parts)).toBe(true);
        const other = partitionIndices(labels, clients, scheme, 43, groups);
        // Natural with more groups than clients deals groups by seed, so it changes too.
        expect(sameParts(other, parts)).toBe(false);
      });
    });
  }
});

describe("iid", () => {
  it("gives sizes that differ by at most 1 and mixed labels", () => {
    const parts = partitionIndices(labels, 7, { kind: "iid" }, 3);
    const sizes = parts.map((p) => p.length);
    expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(n);
    for (const part of parts) expect(distinctLabels(labels, part)).toBe(10);
  });

  it("works with one client per example", () => {
    const parts = partitionIndices(labels.subarray(0, 5), 5, { kind: "iid" }, 3);
    expect(parts.map((p) => p.length)).toEqual([1, 1, 1, 1, 1]);
  });
});

describe("shards (McMahan et al.)", () => {
  it("gives each client 2 shards of one or two labels, equal sizes when divisible", () => {
    // 6000 examples, 100 clients × 2 shards of 30: like the paper's 200 shards of 300.
    const parts = partitionIndices(labels, 100, { kind: "shards", shardsPerClient: 2 }, 7);
    expectDisjointFullCover(parts, n);
    for (const part of parts) {
      expect(part.length).toBe(60);
      // Each shard lies within one label, or straddles one boundary: ≤ 2 labels per shard.
      expect(distinctLabels(labels, part)).toBeLessThanOrEqual(4);
    }
    // Shards of 30 inside classes of 600 never straddle, so each client has at most 2 labels.
    expect(Math.max(...parts.map((p) => distinctLabels(labels, p)))).toBeLessThanOrEqual(2);
    const mean = parts.reduce((s, p) => s + distinctLabels(labels, p), 0) / parts.length;
    expect(mean).toBeGreaterThan(1.5);
  });

  it("keeps sizes within 1 when the shard count does not divide n", () => {
    const parts = partitionIndices(labels, 7, { kind: "shards", shardsPerClient: 3 }, 7);
    expectDisjointFullCover(parts, n);
    const sizes = parts.map((p) => p.length);
    // 6000 / 21 shards = 285.7: shards of 285 or 286, three per client.
    for (const size of sizes) expect(size >= 855 && size <= 858).toBe(true);
    for (const part of parts) expect(distinctLabels(labels, part)).toBeLessThanOrEqual(6);
  });

  it("refuses a bad shardsPerClient or more shards than examples", () => {
    expectCode(
      () => partitionIndices(labels, 10, { kind: "shards", shardsPerClient: 0 }, 1),
      ErrorCode.INVALID_CONFIG,
      /shardsPerClient/,
    );
    expectCode(
      () => partitionIndices(labels, 10, { kind: "shards", shardsPerClient: 1.5 }, 1),
      ErrorCode.INVALID_CONFIG,
      /shardsPerClient/,
    );
    expectCode(
      () => partitionIndices(labels.subarray(0, 10), 10, { kind: "shards", shardsPerClient: 2 }, 1),
      ErrorCode.INVALID_CONFIG,
      /shards/,
    );
  });
});

describe("dirichlet", () => {
  it("is more label-skewed for small alpha than for large alpha", () => {
    const skewed = partitionIndices(labels, 10, { kind: "dirichlet", alpha: 0.1 }, 5);
    const balanced = partitionIndices(labels, 10, { kind: "dirichlet", alpha: 100 }, 5);
    expectDisjointFullCover(skewed, n);
    expectDisjointFullCover(balanced, n);
    const hSkewed = meanLabelEntropy(labels, skewed);
    const hBalanced = meanLabelEntropy(labels, balanced);
    expect(hBalanced).toBeGreaterThan(Math.log(10) - 0.05); // near uniform over 10 classes
    expect(hSkewed).toBeLessThan(hBalanced - 0.8);
  });

  it("gives every client at least minSize examples", () => {
    const parts = partitionIndices(labels, 20, { kind: "dirichlet", alpha: 0.3, minSize: 50 }, 9);
    expectDisjointFullCover(parts, n);
    for (const part of parts) expect(part.length).toBeGreaterThanOrEqual(50);
  });

  it("gives up with INVALID_CONFIG when minSize cannot be met", () => {
    // 10 examples, 5 clients, minSize 2: only the exact 2-2-2-2-2 split passes, which tiny alpha never draws.
    expectCode(
      () => partitionIndices(labels.subarray(0, 10), 5, { kind: "dirichlet", alpha: 0.01, minSize: 2 }, 1),
      ErrorCode.INVALID_CONFIG,
      /minSize=2.*draws/,
    );
    expectCode(
      () => partitionIndices(labels, 10, { kind: "dirichlet", alpha: 0 }, 1),
      ErrorCode.INVALID_CONFIG,
      /alpha/,
    );
    expectCode(
      () => partitionIndices(labels, 10, { kind: "dirichlet", alpha: 1, minSize: 601 }, 1),
      ErrorCode.INVALID_CONFIG,
      /minSize/,
    );
  });

  it("samples Dirichlet shares that sum to 1, even for tiny alpha", () => {
    const rng = createRng(11);
    for (const alpha of [0.001, 0.1, 1, 50]) {
      const shares = sampleDirichlet(8, alpha, rng);
      expect(shares.every((s) => s >= 0 && Number.isFinite(s))).toBe(true);
      expect(shares.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    }
    // Mean of Dir(2) components is 1/k.
    const mean = new Float64Array(4);
    for (let t = 0; t < 4000; t++) {
      const shares = sampleDirichlet(4, 2, rng);
      for (let i = 0; i < 4; i++) mean[i] += shares[i] / 4000;
    }
    for (const m of mean) expect(Math.abs(m - 0.25)).toBeLessThan(0.01);
  });
});

describe("powerlaw", () => {
  it("gives sizes following rank^-exponent with every client at least 1, labels IID", () => {
    const parts = partitionIndices(labels, 20, { kind: "powerlaw", exponent: 1 }, 4);
    const sizes = parts.map((p) => p.length).sort((a, b) => b - a);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(n);
    // Zipf: the largest is about twice the second and 20× the smallest.
    expect(sizes[0] / sizes[1]).toBeGreaterThan(1.9);
    expect(sizes[0] / sizes[1]).toBeLessThan(2.1);
    expect(sizes[0] / sizes[19]).toBeGreaterThan(18);
    for (const part of parts) expect(part.length).toBeGreaterThanOrEqual(1);
    // The biggest client sees every label.
    const biggest = parts.reduce((a, b) => (b.length > a.length ? b : a));
    expect(distinctLabels(labels, biggest)).toBe(10);
  });

  it("gives equal sizes for exponent 0 and at least 1 example each when steep", () => {
    const flat = partitionIndices(labels, 6, { kind: "powerlaw", exponent: 0 }, 4).map((p) => p.length);
    expect(Math.max(...flat) - Math.min(...flat)).toBeLessThanOrEqual(1);
    const steep = partitionIndices(labels.subarray(0, 50), 50, { kind: "powerlaw", exponent: 3 }, 4);
    expect(steep.every((p) => p.length === 1)).toBe(true);
    expectCode(
      () => partitionIndices(labels, 6, { kind: "powerlaw", exponent: -1 }, 4),
      ErrorCode.INVALID_CONFIG,
      /exponent/,
    );
  });
});

describe("natural", () => {
  it("maps the i-th group to client i when the counts match, whatever the seed", () => {
    const g = Int32Array.from([5, 2, 9, 2, 5, 9, 9]);
    const y = new Int32Array(7);
    for (const seed of [1, 2]) {
      const parts = partitionIndices(y, 3, { kind: "natural" }, seed, g);
      expect(parts.map((p) => Array.from(p))).toEqual([
        [1, 3],
        [0, 4],
        [2, 5, 6],
      ]);
    }
  });

  it("keeps each group whole when merging groups into fewer clients", () => {
    const parts = partitionIndices(labels, 5, { kind: "natural" }, 8, groups);
    const clientOfGroup = new Map<number, Set<number>>();
    parts.forEach((part, c) => {
      for (const i of part) {
        const owners = clientOfGroup.get(groups[i]) ?? new Set<number>();
        owners.add(c);
        clientOfGroup.set(groups[i], owners);
      }
    });
    expect(clientOfGroup.size).toBe(13);
    for (const owners of clientOfGroup.values()) expect(owners.size).toBe(1);
  });

  it("refuses missing groups and more clients than groups", () => {
    expectCode(() => partitionIndices(labels, 5, { kind: "natural" }, 1), ErrorCode.INVALID_CONFIG, /group/);
    expectCode(
      () => partitionIndices(labels, 14, { kind: "natural" }, 1, groups),
      ErrorCode.INVALID_CONFIG,
      /13 groups/,
    );
  });
});

describe("validation and helpers", () => {
  it("refuses numClients outside [1, n] naming the field", () => {
    for (const bad of [0, -1, 2.5, n + 1]) {
      expectCode(
        () => partitionIndices(labels, bad, { kind: "iid" }, 1),
        ErrorCode.INVALID_CONFIG,
        /numClients/,
      );
    }
    expectCode(
      () => partitionIndices(labels, 2, { kind: "zipf" } as unknown as PartitionScheme, 1),
      ErrorCode.INVALID_CONFIG,
      /unknown kind "zipf"/,
    );
  });

  it("partitionDataset copies each client's rows and uses the dataset's groups", () => {
    const x = Float32Array.from({ length: 12 }, (_, i) => i);
    const ds: Dataset = {
      name: "toy",
      x,
      y: Int32Array.from([0, 1, 0, 1, 0, 1]),
      n: 6,
      exampleShape: [2],
      numClasses: 2,
      groups: Int32Array.from([1, 1, 0, 0, 1, 0]),
    };
    const clients = partitionDataset(ds, 2, { kind: "natural" }, 0);
    expect(clients[0].n).toBe(3);
    expect(Array.from(clients[0].x)).toEqual([4, 5, 6, 7, 10, 11]);
    expect(Array.from(clients[1].y)).toEqual([0, 1, 0]);
    expect(clients[1].name).toBe("toy/client-1");
    clients[0].x[0] = 99;
    expect(ds.x[4]).toBe(4);
  });
});

describe("parsePartitionSpec", () => {
  it("parses INDEX/COUNT with a 0-based index", () => {
    expect(parsePartitionSpec("3/10")).toEqual({ index: 3, count: 10 });
    expect(parsePartitionSpec(" 0 / 1 ")).toEqual({ index: 0, count: 1 });
    expect(parsePartitionSpec("9/10")).toEqual({ index: 9, count: 10 });
  });

  it("refuses bad formats and an index ≥ count", () => {
    for (const bad of ["10/10", "3", "3/", "/10", "-1/10", "a/b", "1.5/10", "0/0", "3/10/2", ""]) {
      expectCode(() => parsePartitionSpec(bad), ErrorCode.INVALID_CONFIG, /--partition/);
    }
  });
});

describe("holdOut", () => {
  it("splits off the tail as held-out data and keeps the rest for training", () => {
    const n = 10;
    const ds: Dataset = {
      name: "toy",
      x: Float32Array.from({ length: n * 2 }, (_, i) => i),
      y: Int32Array.from({ length: n }, (_, i) => i % 3),
      n,
      exampleShape: [2],
      numClasses: 3,
    };
    const { train, heldOut } = holdOut(ds, 0.25);
    expect(train.n).toBe(7);
    expect(heldOut.n).toBe(3);
    expect(Array.from(heldOut.x.slice(0, 2))).toEqual([14, 15]);
    expect(() => holdOut(ds, 1)).toThrow(/holdout fraction/);
  });
});
