import { existsSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { gunzipSync } from "node:zlib";
import { ErrorCode, FedsimError } from "../errors.js";
import { type Dataset, type TrainTest, validateDataset } from "./dataset.js";

/**
 * The IDX format of MNIST and Fashion-MNIST: bytes 0–1 are zero, byte 2 is the element type,
 * byte 3 the number of dimensions, then one big-endian uint32 per dimension, then the elements,
 * big-endian. Files are often gzipped; we detect that from the gzip magic bytes, not the name.
 */
export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

export interface IdxArray {
  dims: number[];
  data: IdxData;
}

/** Where Debian's `dataset-fashion-mnist` package puts the files. */
export const FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";

const ELEMENT_TYPES: Record<number, { name: string; bytes: number }> = {
  8: { name: "uint8", bytes: 1 },
  9: { name: "int8", bytes: 1 },
  11: { name: "int16", bytes: 2 },
  12: { name: "int32", bytes: 4 },
  13: { name: "float32", bytes: 4 },
  14: { name: "float64", bytes: 8 },
};

/** Largest element count we accept, so a corrupt header cannot ask for a huge allocation. */
const MAX_ELEMENTS = 2 ** 31 - 1;

/** Parses one IDX file's bytes (gzipped or not). `file` only serves error messages. */
export function parseIdx(bytes: Uint8Array, file?: string): IdxArray {
  const where = file ? `IDX file ${file}` : "IDX data";
  const bad = (why: string) => new FedsimError(ErrorCode.BAD_DATA, `${where}: ${why}`);
  let raw = bytes;
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      raw = gunzipSync(raw);
    } catch (err) {
      throw bad(`looks gzipped but does not decompress (${(err as Error).message})`);
    }
  }
  if (raw.length < 4) throw bad(`header is ${raw.length} bytes, expected at least 4`);
  if (raw[0] !== 0 || raw[1] !== 0) {
    throw bad(`bad magic number: first two bytes are ${hex(raw[0])} ${hex(raw[1])}, expected 0x00 0x00`);
  }
  const type = ELEMENT_TYPES[raw[2]];
  if (type === undefined) throw bad(`unknown element type ${hex(raw[2])} (expected 0x08, 0x09, 0x0b–0x0e)`);
  const ndims = raw[3];
  if (ndims === 0) throw bad("has zero dimensions");
  const headerLength = 4 + 4 * ndims;
  if (raw.length < headerLength) {
    throw bad(`header is ${raw.length} bytes, but ${ndims} dimensions need ${headerLength}`);
  }
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let d = 0; d < ndims; d++) {
    const size = view.getUint32(4 + 4 * d, false);
    dims.push(size);
    count *= size;
  }
  if (count > MAX_ELEMENTS) throw bad(`dimensions [${dims}] describe ${count} elements, more than we accept`);
  const expected = count * type.bytes;
  const actual = raw.length - headerLength;
  if (actual !== expected) {
    throw bad(
      `dimensions [${dims}] of ${type.name} need ${expected} data bytes, found ${actual}` +
        (actual < expected ? " (truncated file?)" : ""),
    );
  }
  return { dims, data: readElements(view, headerLength, count, raw[2]) };
}

function readElements(view: DataView, offset: number, count: number, typeByte: number): IdxData {
  switch (typeByte) {
    case 0x08:
      return new Uint8Array(view.buffer, view.byteOffset + offset, count).slice();
    case 0x09:
      return new Int8Array(view.buffer, view.byteOffset + offset, count).slice();
    case 0x0b: {
      const out = new Int16Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt16(offset + 2 * i, false);
      return out;
    }
    case 0x0c: {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(offset + 4 * i, false);
      return out;
    }
    case 0x0d: {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(offset + 4 * i, false);
      return out;
    }
    default: {
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(offset + 8 * i, false);
      return out;
    }
  }
}

function hex(byte: number | undefined): string {
  return byte === undefined ? "(none)" : `0x${byte.toString(16).padStart(2, "0")}`;
}

type IdxRole = "trainImages" | "trainLabels" | "testImages" | "testLabels";

/** File names we accept for each role, in the order we look for them. */
const IDX_FILE_NAMES: Record<IdxRole, string[]> = {
  trainImages: idxNames("train", "images", 3),
  trainLabels: idxNames("train", "labels", 1),
  testImages: idxNames("t10k", "images", 3),
  testLabels: idxNames("t10k", "labels", 1),
};

function idxNames(split: string, kind: string, ndims: number): string[] {
  const stems = [`${split}-${kind}-idx${ndims}-ubyte`, `${split}-${kind}.idx${ndims}-ubyte`];
  return stems.flatMap((stem) => [stem, `${stem}.gz`]);
}

export interface IdxFileSet {
  found: Partial<Record<IdxRole, string>>;
  /** Roles with no file, each with the names that were tried. */
  missing: { role: IdxRole; tried: string[] }[];
}

/** Looks for the four MNIST-style IDX files in `dir` without reading them. */
export function findIdxFiles(dir: string): IdxFileSet {
  const result: IdxFileSet = { found: {}, missing: [] };
  for (const role of Object.keys(IDX_FILE_NAMES) as IdxRole[]) {
    const hit = IDX_FILE_NAMES[role].map((name) => join(dir, name)).find((path) => existsSync(path));
    if (hit) result.found[role] = hit;
    else result.missing.push({ role, tried: IDX_FILE_NAMES[role] });
  }
  return result;
}

/** True if `dir` holds a complete MNIST-style set of IDX files. */
export function hasIdxFiles(dir: string): boolean {
  return findIdxFiles(dir).missing.length === 0;
}

const idxCache = new Map<string, Promise<TrainTest>>();

/**
 * Loads an MNIST-style IDX directory (train-/t10k- images and labels, gzipped or not). Pixels of
 * uint8 images are scaled to [0, 1]; other element types are kept as they are. Results are cached
 * per directory and file version, since many virtual clients in one process load the same files;
 * treat the returned arrays as read-only.
 */
export async function loadIdxDataset(dir: string, name?: string): Promise<TrainTest> {
  const absDir = resolve(dir);
  const files = findIdxFiles(absDir);
  if (files.missing.length > 0) {
    const lines = files.missing.map((m) => `${m.role}: none of ${m.tried.join(", ")}`);
    const hint =
      absDir === FASHION_MNIST_DIR ? " Install it with: apt-get install dataset-fashion-mnist" : "";
    throw new FedsimError(
      ErrorCode.DATA_NOT_FOUND,
      `IDX dataset: missing files in ${absDir} (looked for ${lines.join("; ")}).${hint}`,
      lines,
    );
  }
  const paths = files.found as Record<IdxRole, string>;
  const key = Object.values(paths)
    .map((p) => {
      const st = statSync(p);
      return `${p}:${st.size}:${st.mtimeMs}`;
    })
    .join("|");
  const cacheKey = `${name ?? ""}|${key}`;
  let pending = idxCache.get(cacheKey);
  if (!pending) {
    pending = readIdxDataset(absDir, paths, name ?? defaultName(absDir));
    idxCache.set(cacheKey, pending);
    pending.catch(() => idxCache.delete(cacheKey));
  }
  return pending;
}

function defaultName(dir: string): string {
  const parts = dir.split(/[\\/]/).filter((p) => p.length > 0);
  return parts[parts.length - 1] ?? "idx";
}

async function readIdxDataset(dir: string, paths: Record<IdxRole, string>, name: string): Promise<TrainTest> {
  const { train, test } = await readIdxSplits(dir, paths, name);
  if (!test) throw new FedsimError(ErrorCode.INTERNAL, `IDX dataset ${dir}: test files were not read`);
  return { train, test, source: dir };
}

/**
 * A node's own IDX training files (train-images and train-labels); test files, if any, are not
 * read. Its label space ends at its highest label: the trainer widens it to the model's classes.
 */
export async function loadIdxTrainSet(dir: string): Promise<Dataset> {
  const absDir = resolve(dir);
  const files = findIdxFiles(absDir);
  const missing = files.missing.filter((m) => m.role === "trainImages" || m.role === "trainLabels");
  if (missing.length > 0) {
    const lines = missing.map((m) => `${m.role}: none of ${m.tried.join(", ")}`);
    throw new FedsimError(
      ErrorCode.DATA_NOT_FOUND,
      `IDX training files: missing in ${absDir} (looked for ${lines.join("; ")})`,
      lines,
    );
  }
  const { trainImages, trainLabels } = files.found;
  return (await readIdxSplits(absDir, { trainImages, trainLabels }, defaultName(absDir))).train;
}

async function readIdxSplits(
  dir: string,
  paths: Partial<Record<IdxRole, string>>,
  name: string,
): Promise<{ train: Dataset; test?: Dataset }> {
  const read = async (role: IdxRole): Promise<IdxArray | undefined> => {
    const path = paths[role];
    return path === undefined ? undefined : parseIdx(await readFile(path), path);
  };
  const [trainImages, trainLabels, testImages, testLabels] = await Promise.all(
    (["trainImages", "trainLabels", "testImages", "testLabels"] as const).map(read),
  );
  if (!trainImages || !trainLabels || !paths.trainImages || !paths.trainLabels) {
    throw new FedsimError(ErrorCode.DATA_NOT_FOUND, `IDX dataset ${dir}: no training files`);
  }
  const trainY = toLabels(trainLabels, paths.trainLabels);
  const testY = testLabels && paths.testLabels ? toLabels(testLabels, paths.testLabels) : new Int32Array(0);
  let maxLabel = 0;
  for (const labels of [trainY, testY]) for (const label of labels) maxLabel = Math.max(maxLabel, label);
  const numClasses = Math.max(2, maxLabel + 1);
  const build = (split: string, images: IdxArray, imagesPath: string, y: Int32Array): Dataset => {
    const { shape, x } = toImages(images, imagesPath);
    if (y.length !== images.dims[0]) {
      throw new FedsimError(
        ErrorCode.BAD_DATA,
        `IDX dataset ${dir}: ${split} has ${images.dims[0]} images but ${y.length} labels`,
      );
    }
    return validateDataset({ name: `${name}/${split}`, x, y, n: y.length, exampleShape: shape, numClasses });
  };
  const train = build("train", trainImages, paths.trainImages, trainY);
  if (!testImages || !paths.testImages || !testLabels) return { train };
  const test = build("test", testImages, paths.testImages, testY);
  if (train.exampleShape.join("x") !== test.exampleShape.join("x")) {
    throw new FedsimError(
      ErrorCode.BAD_DATA,
      `IDX dataset ${dir}: train images are [${train.exampleShape}] but test images are [${test.exampleShape}]`,
    );
  }
  return { train, test };
}

function toLabels(array: IdxArray, path: string): Int32Array {
  const isIntegerType = !(array.data instanceof Float32Array || array.data instanceof Float64Array);
  if (array.dims.length !== 1 || !isIntegerType) {
    throw new FedsimError(
      ErrorCode.BAD_DATA,
      `IDX file ${path}: labels must be a 1-D integer array, got ${array.dims.length}-D ${array.data.constructor.name}`,
    );
  }
  const labels = Int32Array.from(array.data);
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] < 0) throw new FedsimError(ErrorCode.BAD_DATA, `IDX file ${path}: label ${i} is negative`);
  }
  return labels;
}

/** [n, rows, cols] → examples [rows, cols, 1]; [n, rows, cols, channels] → [rows, cols, channels]. */
function toImages(array: IdxArray, path: string): { shape: number[]; x: Float32Array } {
  const { dims, data } = array;
  if (dims.length !== 3 && dims.length !== 4) {
    throw new FedsimError(
      ErrorCode.BAD_DATA,
      `IDX file ${path}: images must be [n, rows, cols] or [n, rows, cols, channels], got [${dims}]`,
    );
  }
  const shape = dims.length === 3 ? [dims[1], dims[2], 1] : dims.slice(1);
  const x = new Float32Array(data.length);
  if (data instanceof Uint8Array) {
    for (let i = 0; i < data.length; i++) x[i] = data[i] / 255;
  } else {
    x.set(data);
  }
  return { shape, x };
}
