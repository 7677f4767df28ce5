import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { classCounts } from "../common/data/dataset.js";
import { FASHION_MNIST_DIR, hasIdxFiles, loadIdxDataset, parseIdx } from "../common/data/idx.js";
import { ErrorCode, FedsimError } from "../common/errors.js";

/** IDX bytes: 0x00 0x00, type, ndims, big-endian dims, big-endian elements. */
function idxBytes(type: number, dims: number[], values: number[]): Uint8Array {
  const width = { 8: 1, 9: 1, 11: 2, 12: 4, 13: 4, 14: 8 }[type] ?? 1;
  const header = 4 + 4 * dims.length;
  const bytes = new Uint8Array(header + width * values.length);
  const view = new DataView(bytes.buffer);
  bytes[2] = type;
  bytes[3] = dims.length;
  dims.forEach((d, i) => {
    view.setUint32(4 + 4 * i, d, false);
  });
  values.forEach((v, i) => {
    const at = header + width * i;
    if (type === 0x08) view.setUint8(at, v);
    else if (type === 0x09) view.setInt8(at, v);
    else if (type === 0x0b) view.setInt16(at, v, false);
    else if (type === 0x0c) view.setInt32(at, v, false);
    else if (type === 0x0d) view.setFloat32(at, v, false);
    else view.setFloat64(at, v, false);
  });
  return bytes;
}

function expectFedsimError(fn: () => unknown, code: string, messagePart?: string | RegExp): FedsimError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FedsimError);
    const e = err as FedsimError;
    expect(e.code).toBe(code);
    if (messagePart !== undefined) expect(e.message).toMatch(messagePart);
    return e;
  }
  throw new Error("expected a FedsimError");
}

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "fedsim-idx-"));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe("parseIdx", () => {
  it("reads uint8 images with big-endian dims", () => {
    const pixels = Array.from({ length: 2 * 3 * 4 }, (_, i) => (i * 11) % 256);
    const { dims, data } = parseIdx(idxBytes(0x08, [2, 3, 4], pixels));
    expect(dims).toEqual([2, 3, 4]);
    expect(data).toBeInstanceOf(Uint8Array);
    expect(Array.from(data)).toEqual(pixels);
  });

  it("reads gzipped bytes the same as plain ones", () => {
    const labels = [3, 1, 4, 1, 5, 9, 2, 6];
    const plain = idxBytes(0x08, [8], labels);
    const zipped = gzipSync(plain);
    expect(zipped[0]).toBe(0x1f);
    const a = parseIdx(plain);
    const b = parseIdx(zipped);
    expect(b.dims).toEqual([8]);
    expect(Array.from(b.data)).toEqual(labels);
    expect(Array.from(a.data)).toEqual(Array.from(b.data));
  });

  it("decodes big-endian int32, int16, int8, float32 and float64", () => {
    const ints = [1, -2, 70000, -2147483648, 2147483647];
    const i32 = parseIdx(idxBytes(0x0c, [5], ints));
    expect(i32.data).toBeInstanceOf(Int32Array);
    expect(Array.from(i32.data)).toEqual(ints);
    // 70000 is 0x00011170: read little-endian it would be a different number.
    expect(i32.data[2]).toBe(70000);

    expect(Array.from(parseIdx(idxBytes(0x0b, [3], [-300, 300, 1])).data)).toEqual([-300, 300, 1]);
    expect(Array.from(parseIdx(idxBytes(0x09, [3], [-5, 0, 7])).data)).toEqual([-5, 0, 7]);
    const f32 = parseIdx(idxBytes(0x0d, [2, 1], [0.5, -1.25]));
    expect(f32.data).toBeInstanceOf(Float32Array);
    expect(Array.from(f32.data)).toEqual([0.5, -1.25]);
    const f64 = parseIdx(idxBytes(0x0e, [2], [Math.PI, -1e300]));
    expect(f64.data).toBeInstanceOf(Float64Array);
    expect(Array.from(f64.data)).toEqual([Math.PI, -1e300]);
  });

  it("handles a view into a larger buffer at an odd offset", () => {
    const inner = idxBytes(0x0c, [2], [123456, -7]);
    const outer = new Uint8Array(inner.length + 3);
    outer.set(inner, 1);
    expect(Array.from(parseIdx(outer.subarray(1, 1 + inner.length)).data)).toEqual([123456, -7]);
  });

  it("refuses malformed input with BAD_DATA naming the file", () => {
    const good = idxBytes(0x08, [2, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8]);
    expectFedsimError(
      () => parseIdx(good.subarray(0, good.length - 1), "x.idx"),
      ErrorCode.BAD_DATA,
      /x\.idx.*truncated/,
    );
    const extra = new Uint8Array(good.length + 1);
    extra.set(good);
    expectFedsimError(() => parseIdx(extra, "x.idx"), ErrorCode.BAD_DATA, /need 8 data bytes, found 9/);
    const badMagic = good.slice();
    badMagic[0] = 0x08;
    expectFedsimError(() => parseIdx(badMagic, "m.idx"), ErrorCode.BAD_DATA, /m\.idx.*magic/);
    const badType = good.slice();
    badType[2] = 0x0a;
    expectFedsimError(() => parseIdx(badType), ErrorCode.BAD_DATA, /unknown element type 0x0a/);
    expectFedsimError(() => parseIdx(new Uint8Array([0, 0])), ErrorCode.BAD_DATA, /header/);
    expectFedsimError(() => parseIdx(good.subarray(0, 9)), ErrorCode.BAD_DATA, /3 dimensions need 16/);
    expectFedsimError(
      () => parseIdx(gzipSync(good).subarray(0, 12), "z.gz"),
      ErrorCode.BAD_DATA,
      /z\.gz.*gzip/,
    );
  });
});

describe("loadIdxDataset", () => {
  function writeSet(dir: string, gz: boolean, spelling: "dash" | "dot" = "dash"): void {
    const sep = spelling === "dash" ? "-" : ".";
    const suffix = gz ? ".gz" : "";
    const pack = (b: Uint8Array) => (gz ? gzipSync(b) : b);
    // 4 train images of 2×3, labels 0..2; 2 test images.
    writeFileSync(
      join(dir, `train-images${sep}idx3-ubyte${suffix}`),
      pack(idxBytes(0x08, [4, 2, 3], Array(24).fill(255))),
    );
    writeFileSync(
      join(dir, `train-labels${sep}idx1-ubyte${suffix}`),
      pack(idxBytes(0x08, [4], [0, 1, 2, 1])),
    );
    const testPixels = Array.from({ length: 12 }, (_, i) => i * 20);
    writeFileSync(
      join(dir, `t10k-images${sep}idx3-ubyte${suffix}`),
      pack(idxBytes(0x08, [2, 2, 3], testPixels)),
    );
    writeFileSync(join(dir, `t10k-labels${sep}idx1-ubyte${suffix}`), pack(idxBytes(0x08, [2], [2, 0])));
  }

  for (const gz of [false, true]) {
    it(`loads a ${gz ? "gzipped" : "plain"} set, scaling pixels to [0, 1]`, async () => {
      const dir = tempDir();
      writeSet(dir, gz);
      const { train, test, source } = await loadIdxDataset(dir, "tiny");
      expect(source).toBe(dir);
      expect(train.n).toBe(4);
      expect(test.n).toBe(2);
      expect(train.exampleShape).toEqual([2, 3, 1]);
      expect(train.numClasses).toBe(3);
      expect(test.numClasses).toBe(3);
      expect(Array.from(train.y)).toEqual([0, 1, 2, 1]);
      expect(train.x.every((v) => v === 1)).toBe(true);
      expect(test.x[1]).toBeCloseTo(20 / 255, 6);
      expect(train.name).toBe("tiny/train");
    });
  }

  it("accepts the train-images.idx3-ubyte spelling and numClasses is at least 2", async () => {
    const dir = tempDir();
    writeSet(dir, false, "dot");
    writeFileSync(join(dir, "train-labels.idx1-ubyte"), idxBytes(0x08, [4], [0, 0, 0, 0]));
    writeFileSync(join(dir, "t10k-labels.idx1-ubyte"), idxBytes(0x08, [2], [0, 0]));
    const { train } = await loadIdxDataset(dir);
    expect(train.numClasses).toBe(2);
  });

  it("refuses image and label counts that disagree", async () => {
    const dir = tempDir();
    writeSet(dir, false);
    writeFileSync(join(dir, "train-labels-idx1-ubyte"), idxBytes(0x08, [3], [0, 1, 2]));
    await expect(loadIdxDataset(dir)).rejects.toMatchObject({
      code: ErrorCode.BAD_DATA,
      message: /4 images but 3 labels/,
    });
  });

  it("refuses a truncated file on disk with BAD_DATA naming it", async () => {
    const dir = tempDir();
    writeSet(dir, true);
    const good = gzipSync(idxBytes(0x08, [2, 2, 3], Array(12).fill(1)));
    writeFileSync(join(dir, "t10k-images-idx3-ubyte.gz"), good.subarray(0, good.length - 6));
    await expect(loadIdxDataset(dir)).rejects.toMatchObject({
      code: ErrorCode.BAD_DATA,
      message: /t10k-images-idx3-ubyte\.gz/,
    });
  });

  it("reports missing files with DATA_NOT_FOUND, listing the names and the directory", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "train-images-idx3-ubyte"), idxBytes(0x08, [1, 1, 1], [0]));
    const err = await loadIdxDataset(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FedsimError);
    expect((err as FedsimError).code).toBe(ErrorCode.DATA_NOT_FOUND);
    expect((err as FedsimError).message).toContain(dir);
    expect((err as FedsimError).message).toContain("t10k-labels-idx1-ubyte.gz");
    expect((err as FedsimError).message).not.toContain("apt-get");
    expect((err as FedsimError).details).toHaveLength(3);
  });
});

// The Debian package dataset-fashion-mnist may or may not be installed where tests run; each
// branch asserts the behaviour that applies.
if (hasIdxFiles(FASHION_MNIST_DIR)) {
  describe("Fashion-MNIST from the Debian package", () => {
    it("loads 60000/10000 images of [28, 28, 1] in 10 classes", async () => {
      const { train, test } = await loadIdxDataset(FASHION_MNIST_DIR, "fashion-mnist");
      expect(train.n).toBe(60000);
      expect(test.n).toBe(10000);
      expect(train.exampleShape).toEqual([28, 28, 1]);
      expect(train.numClasses).toBe(10);
      expect(Array.from(classCounts(train.y, 10))).toEqual(Array(10).fill(6000));
      let max = 0;
      for (const v of test.x) max = Math.max(max, v);
      expect(max).toBe(1);
      // Cached: a second load in the same process returns the same arrays.
      expect((await loadIdxDataset(FASHION_MNIST_DIR, "fashion-mnist")).train.x === train.x).toBe(true);
    });
  });
} else {
  describe("Fashion-MNIST without the Debian package", () => {
    it("says how to install it", async () => {
      await expect(loadIdxDataset(FASHION_MNIST_DIR)).rejects.toMatchObject({
        code: ErrorCode.DATA_NOT_FOUND,
        message: /apt-get install dataset-fashion-mnist/,
      });
    });
  });
}
