import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadCsvDataset, parseCsvDataset } from "../common/data/csv.js";
import { ErrorCode, FedsimError } from "../common/errors.js";

function csvError(fn: () => unknown): FedsimError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FedsimError);
    return err as FedsimError;
  }
  throw new Error("expected a FedsimError");
}

const tempDirs: string[] = [];
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

describe("parseCsvDataset", () => {
  it("reads a header and the label in the last column by default", () => {
    const ds = parseCsvDataset("a,b,label\n0.5,1,2\n-1,3e2,0\n", { name: "t" });
    expect(ds.n).toBe(2);
    expect(ds.exampleShape).toEqual([2]);
    expect(Array.from(ds.x)).toEqual([0.5, 1, -1, 300]);
    expect(Array.from(ds.y)).toEqual([2, 0]);
    expect(ds.numClasses).toBe(3);
    expect(ds.name).toBe("t");
  });

  it("reads the label from the first column, without a header, with CRLF and quotes", () => {
    const ds = parseCsvDataset('1,10,20\r\n0,"30",40\r\n\r\n', { labelColumn: "first" });
    expect(Array.from(ds.y)).toEqual([1, 0]);
    expect(Array.from(ds.x)).toEqual([10, 20, 30, 40]);
    expect(ds.numClasses).toBe(2);
  });

  it("takes a numeric label column, a scale and an example shape", () => {
    const ds = parseCsvDataset("255,3,0,51\n0,1,255,102\n", {
      labelColumn: 1,
      scale: 1 / 255,
      exampleShape: [3, 1],
      numClasses: 5,
    });
    expect(Array.from(ds.y)).toEqual([3, 1]);
    expect(ds.exampleShape).toEqual([3, 1]);
    expect(ds.numClasses).toBe(5);
    expect(ds.x[0]).toBeCloseTo(1, 6);
    expect(ds.x[2]).toBeCloseTo(0.2, 6);
    expect(ds.x[4]).toBeCloseTo(1, 6);
  });

  it("honours header: false and header: true", () => {
    // With header false, a non-numeric first row is an error, not silently skipped.
    const e = csvError(() => parseCsvDataset("x,y\n1,0\n", { header: false }));
    expect(e.code).toBe(ErrorCode.BAD_DATA);
    expect(e.message).toMatch(/row 1, column 1: "x"/);
    // With header true, a numeric first row is skipped.
    expect(parseCsvDataset("9,9\n1,0\n", { header: true }).n).toBe(1);
  });

  it("names the row and column of a bad cell", () => {
    const e = csvError(() => parseCsvDataset("f1,f2,label\n1,2,0\n3,oops,1\n", { name: "d" }));
    expect(e.code).toBe(ErrorCode.BAD_DATA);
    expect(e.message).toContain('row 3, column 2 ("f2"): "oops" is not a finite number');
    const empty = csvError(() => parseCsvDataset("1,2,0\n3,,1\n"));
    expect(empty.message).toMatch(/row 2, column 2: "" is not/);
    const inf = csvError(() => parseCsvDataset("1,2,0\n1,Infinity,0\n"));
    expect(inf.message).toMatch(/row 2, column 2: "Infinity"/);
  });

  it("refuses non-integer or negative labels, ragged rows and a wrong shape", () => {
    expect(csvError(() => parseCsvDataset("1,2,0.5\n")).message).toMatch(/row 1, column 3: label "0.5"/);
    expect(csvError(() => parseCsvDataset("1,2,-1\n")).message).toMatch(/label "-1"/);
    expect(csvError(() => parseCsvDataset("1,2,0\n1,0\n")).message).toMatch(
      /row 2 has 2 columns, expected 3/,
    );
    const shape = csvError(() => parseCsvDataset("1,2,0\n", { exampleShape: [3] }));
    expect(shape.code).toBe(ErrorCode.INVALID_CONFIG);
    expect(csvError(() => parseCsvDataset("1,2,0\n", { labelColumn: 3 })).message).toMatch(/labelColumn 3/);
    expect(csvError(() => parseCsvDataset("\n\n")).message).toMatch(/no rows/);
  });
});

describe("loadCsvDataset", () => {
  it("loads train.csv and test.csv from a directory, agreeing on numClasses", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fedsim-csv-"));
    tempDirs.push(dir);
    writeFileSync(join(dir, "train.csv"), "a,b,y\n1,2,0\n3,4,1\n");
    writeFileSync(join(dir, "test.csv"), "a,b,y\n5,6,4\n");
    const { train, test, source } = await loadCsvDataset(dir, { name: "toy" });
    expect(source).toBe(dir);
    expect(train.n).toBe(2);
    expect(test.n).toBe(1);
    expect(train.numClasses).toBe(5);
    expect(test.numClasses).toBe(5);
    expect(train.name).toBe("toy/train");
  });

  it("splits a single file by a seeded permutation", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fedsim-csv-"));
    tempDirs.push(dir);
    const rows = Array.from({ length: 50 }, (_, i) => `${i},${i % 3}`).join("\n");
    const file = join(dir, "all.csv");
    writeFileSync(file, rows);
    const a = await loadCsvDataset(file, { seed: 1 });
    const b = await loadCsvDataset(file, { seed: 1 });
    const c = await loadCsvDataset(file, { seed: 2 });
    expect(a.train.n).toBe(40);
    expect(a.test.n).toBe(10);
    expect(Array.from(a.test.x)).toEqual(Array.from(b.test.x));
    expect(Array.from(a.test.x)).not.toEqual(Array.from(c.test.x));
    const all = [...a.train.x, ...a.test.x].sort((p, q) => p - q);
    expect(all).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it("reports a missing path or missing test.csv with DATA_NOT_FOUND", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fedsim-csv-"));
    tempDirs.push(dir);
    writeFileSync(join(dir, "train.csv"), "1,0\n");
    await expect(loadCsvDataset(dir)).rejects.toMatchObject({
      code: ErrorCode.DATA_NOT_FOUND,
      message: /test\.csv/,
    });
    await expect(loadCsvDataset(join(dir, "nope.csv"))).rejects.toMatchObject({
      code: ErrorCode.DATA_NOT_FOUND,
    });
  });
});
