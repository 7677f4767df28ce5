import { ErrorCode, FedsimError } from "../errors.js";
import { createRng, deriveSeed, type Rng, shuffleInPlace } from "../rng.js";
import { type Dataset, subset } from "./dataset.js";

/**
 * How a dataset is split across clients. Every scheme is seeded and deterministic, the parts are
 * disjoint and together cover every example exactly once, and each client's indices come back
 * sorted ascending.
 */
export type PartitionScheme =
  /** Shuffle, then equal parts (sizes differ by at most 1). */
  | { kind: "iid" }
  /**
   * McMahan et al. 2017: sort by label, cut into numClients × shardsPerClient shards, give each
   * client shardsPerClient random shards. When n is not a multiple of the shard count, shard sizes
   * differ by at most 1 (rather than dropping the remainder), so coverage stays full.
   */
  | { kind: "shards"; shardsPerClient: number }
  /**
   * Label skew: for each class, the share of each client is drawn from Dir(alpha). Resampled until
   * every client has at least minSize examples (default 1); gives up after a fixed number of tries.
   */
  | { kind: "dirichlet"; alpha: number; minSize?: number }
  /**
   * IID labels, unequal sizes: client sizes ∝ rank^(−exponent) (Zipf; default exponent 1, 0 gives
   * equal sizes), ranks assigned to clients at random, every client at least one example.
   */
  | { kind: "powerlaw"; exponent?: number }
  /**
   * By a group id per example (writer, device, …). With as many groups as clients, the i-th
   * smallest group id goes to client i and the seed plays no part; with more groups than clients,
   * groups are dealt to clients round-robin in a seeded random order.
   */
  | { kind: "natural" };

export type PartitionKind = PartitionScheme["kind"];

/** Dirichlet resampling gives up after this many draws that leave some client too small. */
export const DIRICHLET_MAX_ATTEMPTS = 1000;

/** Indices of the examples each client holds: result[c] for client c, sorted ascending. */
export function partitionIndices(
  labels: Int32Array,
  numClients: number,
  scheme: PartitionScheme,
  seed: number,
  groups?: Int32Array,
): Int32Array[] {
  const n = labels.length;
  if (!Number.isInteger(numClients) || numClients < 1 || numClients > n) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `partition: numClients must be an integer in [1, ${n}] (the number of examples), got ${numClients}`,
    );
  }
  if (!Number.isFinite(seed)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `partition: seed must be a finite number, got ${seed}`);
  }
  const rng = createRng(deriveSeed(seed, "partition", scheme.kind));
  let parts: Int32Array[];
  switch (scheme.kind) {
    case "iid":
      parts = partitionIid(n, numClients, rng);
      break;
    case "shards":
      parts = partitionShards(labels, numClients, scheme.shardsPerClient, rng);
      break;
    case "dirichlet":
      parts = partitionDirichlet(labels, numClients, scheme.alpha, scheme.minSize ?? 1, rng);
      break;
    case "powerlaw":
      parts = partitionPowerLaw(n, numClients, scheme.exponent ?? 1, rng);
      break;
    case "natural":
      parts = partitionNatural(n, numClients, groups, rng);
      break;
    default:
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `partition: unknown kind "${(scheme as { kind: string }).kind}" (iid, shards, dirichlet, powerlaw, natural)`,
      );
  }
  for (const part of parts) part.sort();
  return parts;
}

/** The datasets of all clients, copied out of `ds` (its `groups` feed the natural scheme). */
export function partitionDataset(
  ds: Dataset,
  numClients: number,
  scheme: PartitionScheme,
  seed: number,
): Dataset[] {
  return partitionIndices(ds.y, numClients, scheme, seed, ds.groups).map((indices, c) =>
    subset(ds, indices, `${ds.name}/client-${c}`),
  );
}

function shuffledRange(n: number, rng: Rng): Int32Array {
  const order = Int32Array.from({ length: n }, (_, i) => i);
  shuffleInPlace(order, rng);
  return order;
}

/** Cuts `order` into consecutive parts of the given sizes (which sum to order.length). */
function cutBySizes(order: Int32Array, sizes: ArrayLike<number>): Int32Array[] {
  const parts: Int32Array[] = [];
  let start = 0;
  for (let c = 0; c < sizes.length; c++) {
    parts.push(order.slice(start, start + sizes[c]));
    start += sizes[c];
  }
  return parts;
}

/** `total` split into `count` near-equal integer sizes, the larger ones first. */
function evenSizes(total: number, count: number): number[] {
  const base = Math.floor(total / count);
  const extra = total % count;
  return Array.from({ length: count }, (_, i) => base + (i < extra ? 1 : 0));
}

function partitionIid(n: number, numClients: number, rng: Rng): Int32Array[] {
  return cutBySizes(shuffledRange(n, rng), evenSizes(n, numClients));
}

function partitionShards(
  labels: Int32Array,
  numClients: number,
  shardsPerClient: number,
  rng: Rng,
): Int32Array[] {
  const n = labels.length;
  if (!Number.isInteger(shardsPerClient) || shardsPerClient < 1) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `partition: shardsPerClient must be an integer ≥ 1, got ${shardsPerClient}`,
    );
  }
  const numShards = numClients * shardsPerClient;
  if (numShards > n) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `partition: shardsPerClient × numClients = ${numShards} shards is more than the ${n} examples`,
    );
  }
  // Stable sort by label: within a label, the dataset's own order.
  const byLabel = Int32Array.from({ length: n }, (_, i) => i).sort((a, b) => labels[a] - labels[b] || a - b);
  const shards = cutBySizes(byLabel, evenSizes(n, numShards));
  const shardOrder = shuffledRange(numShards, rng);
  const parts: Int32Array[] = [];
  for (let c = 0; c < numClients; c++) {
    const mine = Array.from(
      shardOrder.subarray(c * shardsPerClient, (c + 1) * shardsPerClient),
      (s) => shards[s],
    );
    const part = new Int32Array(mine.reduce((total, shard) => total + shard.length, 0));
    let offset = 0;
    for (const shard of mine) {
      part.set(shard, offset);
      offset += shard.length;
    }
    parts.push(part);
  }
  return parts;
}

function partitionDirichlet(
  labels: Int32Array,
  numClients: number,
  alpha: number,
  minSize: number,
  rng: Rng,
): Int32Array[] {
  const n = labels.length;
  if (!(Number.isFinite(alpha) && alpha > 0)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `partition: dirichlet alpha must be > 0, got ${alpha}`);
  }
  if (!Number.isInteger(minSize) || minSize < 0 || minSize * numClients > n) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `partition: dirichlet minSize must be an integer in [0, ${Math.floor(n / numClients)}] ` +
        `(examples / numClients), got ${minSize}`,
    );
  }
  const byClass = indicesByClass(labels);
  for (const members of byClass) shuffleInPlace(members, rng);

  // Draw only the per-class cut points until one draw satisfies minSize; build indices once.
  for (let attempt = 0; attempt < DIRICHLET_MAX_ATTEMPTS; attempt++) {
    const cuts = byClass.map((members) => dirichletCuts(members.length, numClients, alpha, rng));
    const sizes = new Int32Array(numClients);
    for (const cut of cuts) for (let c = 0; c < numClients; c++) sizes[c] += cut[c + 1] - cut[c];
    if (sizes.every((size) => size >= minSize)) {
      const parts = Array.from(sizes, (size) => new Int32Array(size));
      const filled = new Int32Array(numClients);
      byClass.forEach((members, k) => {
        for (let c = 0; c < numClients; c++) {
          const piece = members.subarray(cuts[k][c], cuts[k][c + 1]);
          parts[c].set(piece, filled[c]);
          filled[c] += piece.length;
        }
      });
      return parts;
    }
  }
  throw new FedsimError(
    ErrorCode.INVALID_CONFIG,
    `partition: dirichlet(alpha=${alpha}) left some client with fewer than minSize=${minSize} examples ` +
      `in ${DIRICHLET_MAX_ATTEMPTS} draws; raise alpha, lower minSize or use fewer clients`,
  );
}

/** Examples of each class present, in dataset order; classes are 0..max label. */
function indicesByClass(labels: Int32Array): Int32Array[] {
  let maxLabel = -1;
  for (const label of labels) {
    if (label < 0) throw new FedsimError(ErrorCode.BAD_DATA, `partition: label ${label} is negative`);
    if (label > maxLabel) maxLabel = label;
  }
  const counts = new Int32Array(maxLabel + 1);
  for (const label of labels) counts[label]++;
  const byClass = Array.from(counts, (count) => new Int32Array(count));
  const filled = new Int32Array(maxLabel + 1);
  labels.forEach((label, i) => {
    byClass[label][filled[label]++] = i;
  });
  return byClass;
}

/**
 * Cut points (length numClients + 1, from 0 to count) splitting `count` examples by proportions
 * drawn from Dir(alpha): floor of the cumulative shares, as NIID-Bench does.
 */
function dirichletCuts(count: number, numClients: number, alpha: number, rng: Rng): Int32Array {
  const shares = sampleDirichlet(numClients, alpha, rng);
  const cuts = new Int32Array(numClients + 1);
  let cumulative = 0;
  for (let c = 0; c < numClients - 1; c++) {
    cumulative += shares[c];
    cuts[c + 1] = Math.min(count, Math.floor(cumulative * count));
  }
  cuts[numClients] = count;
  return cuts;
}

/**
 * A draw from the symmetric Dirichlet(alpha) over k categories, via normalised Gamma(alpha)
 * draws. Work in log space: for small alpha, Gamma draws underflow to 0 in linear space.
 */
export function sampleDirichlet(k: number, alpha: number, rng: Rng): Float64Array {
  const logs = Float64Array.from({ length: k }, () => logGammaSample(alpha, rng));
  let max = Number.NEGATIVE_INFINITY;
  for (const l of logs) max = Math.max(max, l);
  const shares = Float64Array.from(logs, (l) => Math.exp(l - max));
  const total = shares.reduce((a, b) => a + b, 0);
  for (let i = 0; i < k; i++) shares[i] /= total;
  return shares;
}

/** log of a Gamma(shape, 1) draw: Marsaglia–Tsang, with the U^(1/shape) boost for shape < 1. */
function logGammaSample(shape: number, rng: Rng): number {
  if (shape < 1) {
    const u = 1 - rng.next(); // in (0, 1], so the log is finite
    return logGammaSample(shape + 1, rng) + Math.log(u) / shape;
  }
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const z = rng.normal();
    const v = (1 + c * z) ** 3;
    if (v <= 0) continue;
    const u = 1 - rng.next();
    if (Math.log(u) < 0.5 * z * z + d - d * v + d * Math.log(v)) return Math.log(d * v);
  }
}

function partitionPowerLaw(n: number, numClients: number, exponent: number, rng: Rng): Int32Array[] {
  if (!(Number.isFinite(exponent) && exponent >= 0)) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `partition: powerlaw exponent must be ≥ 0, got ${exponent}`,
    );
  }
  const weights = Array.from({ length: numClients }, (_, rank) => (rank + 1) ** -exponent);
  const rankSizes = allocateProportionally(n - numClients, weights).map((size) => size + 1);
  const rankOfClient = shuffledRange(numClients, rng);
  const sizes = Array.from(rankOfClient, (rank) => rankSizes[rank]);
  return cutBySizes(shuffledRange(n, rng), sizes);
}

/** Integer shares of `total` proportional to `weights`, by largest remainder (they sum to total). */
function allocateProportionally(total: number, weights: number[]): number[] {
  const weightSum = weights.reduce((a, b) => a + b, 0);
  const exact = weights.map((w) => (total * w) / weightSum);
  const sizes = exact.map(Math.floor);
  let missing = total - sizes.reduce((a, b) => a + b, 0);
  const byRemainder = exact
    .map((e, i) => ({ i, r: e - Math.floor(e) }))
    .sort((a, b) => b.r - a.r || a.i - b.i);
  for (const { i } of byRemainder) {
    if (missing <= 0) break;
    sizes[i]++;
    missing--;
  }
  return sizes;
}

function partitionNatural(
  n: number,
  numClients: number,
  groups: Int32Array | undefined,
  rng: Rng,
): Int32Array[] {
  if (groups === undefined || groups.length !== n) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `partition: natural needs one group id per example (groups of length ${n}), got ${
        groups === undefined ? "none" : `length ${groups.length}`
      }`,
    );
  }
  const ids = [...new Set(groups)].sort((a, b) => a - b);
  if (ids.length < numClients) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `partition: natural has ${ids.length} groups, fewer than numClients=${numClients}; some client would be empty`,
    );
  }
  const order = Int32Array.from({ length: ids.length }, (_, i) => i);
  if (ids.length > numClients) shuffleInPlace(order, rng);
  const clientOfGroup = new Map<number, number>();
  order.forEach((groupRank, position) => {
    clientOfGroup.set(ids[groupRank], position % numClients);
  });
  const sizes = new Int32Array(numClients);
  for (const g of groups) sizes[clientOfGroup.get(g)!]++;
  const parts = Array.from(sizes, (size) => new Int32Array(size));
  const filled = new Int32Array(numClients);
  groups.forEach((g, i) => {
    const c = clientOfGroup.get(g)!;
    parts[c][filled[c]++] = i;
  });
  return parts;
}

/** Parses the CLI's `--partition 3/10`: 0-based client index 3 of 10 partitions. */
export function parsePartitionSpec(spec: string): { index: number; count: number } {
  const match = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(spec);
  if (!match) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `--partition must look like INDEX/COUNT with a 0-based index (e.g. 3/10), got "${spec}"`,
    );
  }
  const index = Number(match[1]);
  const count = Number(match[2]);
  if (count < 1 || index >= count || !Number.isSafeInteger(count)) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `--partition ${spec}: the index must be in [0, COUNT) and COUNT ≥ 1 (indices are 0-based)`,
    );
  }
  return { index, count };
}
