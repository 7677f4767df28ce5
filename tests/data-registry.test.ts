import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FASHION_MNIST_DIR, hasIdxFiles } from "../common/data/idx.js";
import { type DatasetSpec, describeAvailableDatasets, loadDataset } from "../common/data/index.js";
import { ErrorCode } from "../common/errors.js";

function idxU8(dims: number[], values: number[]): Uint8Array {
  const bytes = new Uint8Array(4 + 4 * dims.length + values.length);
  const view = new DataView(bytes.buffer);
  bytes[2] = 0x08;
  bytes[3] = dims.length;
  dims.forEach((d, i) => {
    view.setUint32(4 + 4 * i, d, false);
  });
  bytes.set(values, 4 + 4 * dims.length);
  return bytes;
}

const tempDirs: string[] = [];
function tinyIdxDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "fedsim-reg-"));
  tempDirs.push(dir);
  writeFileSync(join(dir, "train-images-idx3-ubyte"), idxU8([3, 2, 2], Array(12).fill(51)));
  writeFileSync(join(dir, "train-labels-idx1-ubyte"), idxU8([3], [0, 1, 2]));
  writeFileSync(join(dir, "t10k-images-idx3-ubyte"), idxU8([1, 2, 2], [0, 0, 0, 255]));
  writeFileSync(join(dir, "t10k-labels-idx1-ubyte"), idxU8([1], [1]));
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe("loadDataset", () => {
  it("mnist: the embedded split without dataDir, or when dataDir has no IDX files", async () => {
    const embedded = await loadDataset({ name: "mnist" });
    expect(embedded.train.n).toBe(8000);
    const emptyDir = mkdtempSync(join(tmpdir(), "fedsim-reg-"));
    tempDirs.push(emptyDir);
    const fallback = await loadDataset({ name: "mnist", dataDir: emptyDir });
    expect(fallback.train.n).toBe(8000);
  });

  it("mnist: IDX files in dataDir win over the embedded copy", async () => {
    const dir = tinyIdxDir();
    const { train, test, source } = await loadDataset({ name: "mnist", dataDir: dir });
    expect(source).toBe(dir);
    expect(train.n).toBe(3);
    expect(test.n).toBe(1);
    expect(train.name).toBe("mnist/train");
    expect(train.x[0]).toBeCloseTo(0.2, 6);
  });

  it("fashion-mnist and idx read IDX from the given directory", async () => {
    const dir = tinyIdxDir();
    const fashion = await loadDataset({ name: "fashion-mnist", dataDir: dir });
    expect(fashion.train.name).toBe("fashion-mnist/train");
    expect(fashion.train.n).toBe(3);
    const idx = await loadDataset({ name: "idx", path: dir });
    expect(idx.test.n).toBe(1);
    await expect(loadDataset({ name: "idx" })).rejects.toMatchObject({
      code: ErrorCode.INVALID_CONFIG,
      message: /path/,
    });
  });

  it("csv reads the given path and needs one", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fedsim-reg-"));
    tempDirs.push(dir);
    writeFileSync(join(dir, "train.csv"), "1,2,0\n3,4,1\n");
    writeFileSync(join(dir, "test.csv"), "5,6,1\n");
    const { train } = await loadDataset({ name: "csv", path: dir, csv: { labelColumn: "last" } });
    expect(Array.from(train.x)).toEqual([1, 2, 3, 4]);
    await expect(loadDataset({ name: "csv" })).rejects.toMatchObject({ code: ErrorCode.INVALID_CONFIG });
  });

  it("synthetic: concatenated devices with groups, deterministic and cached", async () => {
    const spec: DatasetSpec = {
      name: "synthetic",
      seed: 5,
      synthetic: { alpha: 0.5, beta: 0.5, numDevices: 10 },
    };
    const a = await loadDataset(spec);
    const b = await loadDataset({ ...spec });
    expect(a === b).toBe(true);
    expect(a.train.exampleShape).toEqual([60]);
    expect(new Set(a.train.groups).size).toBe(10);
    expect(new Set(a.test.groups).size).toBe(10);
    const other = await loadDataset({ ...spec, seed: 6 });
    expect(other.train.n === a.train.n && other.train.y.every((v, i) => v === a.train.y[i])).toBe(false);
  });

  it("refuses an unknown name", async () => {
    await expect(loadDataset({ name: "cifar" } as unknown as DatasetSpec)).rejects.toMatchObject({
      code: ErrorCode.INVALID_CONFIG,
      message: /cifar.*mnist, fashion-mnist, idx, csv, synthetic/,
    });
  });
});

describe("describeAvailableDatasets", () => {
  it("lists every dataset and reflects what is installed", () => {
    const list = describeAvailableDatasets();
    expect(list.map((d) => d.name)).toEqual(["mnist", "fashion-mnist", "idx", "csv", "synthetic"]);
    const mnist = list.find((d) => d.name === "mnist")!;
    expect(mnist.available).toBe(true);
    expect(mnist.where).toContain("mnist");
    const fashion = list.find((d) => d.name === "fashion-mnist")!;
    expect(fashion.available).toBe(hasIdxFiles(FASHION_MNIST_DIR));
    if (!fashion.available) expect(fashion.where).toContain("apt-get install dataset-fashion-mnist");
    else expect(fashion.where).toBe(FASHION_MNIST_DIR);
  });
});
