import { ErrorCode, FedsimError } from "../errors.js";
import { createRng, deriveSeed } from "../rng.js";
import { type PartitionScheme, partitionIndices } from "./partition.js";

/**
 * Which examples each client holds, without a Dataset (or even an index array) per client: a
 * simulation of a hundred thousand clients keeps this table and materialises a client's data
 * only when the client trains.
 */
export interface PartitionTable {
  readonly numClients: number;
  /** The client's example indices, sorted ascending (a fresh array or a view: read it, do not keep it). */
  indicesOf(client: number): Int32Array;
  sizeOf(client: number): number;
  /** The largest client's size (SecAgg bounds every weight by it). */
  maxSize(): number;
  /** Bytes the table itself holds. */
  readonly bytes: number;
}

/**
 * A disjoint partition (iid, shards, dirichlet, powerlaw, natural) packed as one permutation and
 * an offsets array: client c holds order[offsets[c] .. offsets[c+1]).
 */
export function packedPartition(
  labels: Int32Array,
  numClients: number,
  scheme: PartitionScheme,
  seed: number,
  groups?: Int32Array,
): PartitionTable {
  const parts = partitionIndices(labels, numClients, scheme, seed, groups);
  const offsets = new Int32Array(numClients + 1);
  for (let c = 0; c < numClients; c++) offsets[c + 1] = offsets[c] + parts[c].length;
  const order = new Int32Array(offsets[numClients]);
  for (let c = 0; c < numClients; c++) order.set(parts[c], offsets[c]);
  let largest = 0;
  for (let c = 0; c < numClients; c++) largest = Math.max(largest, parts[c].length);
  const check = clientCheck(numClients);
  return {
    numClients,
    indicesOf: (c) => {
      check(c);
      return order.subarray(offsets[c], offsets[c + 1]);
    },
    sizeOf: (c) => {
      check(c);
      return offsets[c + 1] - offsets[c];
    },
    maxSize: () => largest,
    bytes: offsets.byteLength + order.byteLength,
  };
}

/**
 * Each client holds `size` distinct examples drawn from the n available with a draw seeded by
 * (seed, client): nothing is stored per client. Clients overlap (two clients may hold the same
 * example), which is what lets more clients than examples each hold data; it is a sample, not a
 * partition, and says so in its name.
 */
export function sampledPartition(n: number, numClients: number, size: number, seed: number): PartitionTable {
  if (!Number.isInteger(size) || size < 1 || size > n) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `partition: sample size must be an integer in [1, ${n}] (the number of examples), got ${size}`,
    );
  }
  if (!Number.isInteger(numClients) || numClients < 1) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `partition: numClients must be ≥ 1, got ${numClients}`);
  }
  const check = clientCheck(numClients);
  return {
    numClients,
    indicesOf: (c) => {
      check(c);
      return sampleDistinct(n, size, deriveSeed(seed, "partition-sample", c));
    },
    sizeOf: (c) => {
      check(c);
      return size;
    },
    maxSize: () => size,
    bytes: 0,
  };
}

/**
 * k distinct integers from [0, n), sorted, in O(k) memory (Floyd's algorithm): the usual
 * shuffle-and-cut would allocate n per client.
 */
export function sampleDistinct(n: number, k: number, seed: number): Int32Array {
  const rng = createRng(seed);
  const chosen = new Set<number>();
  for (let j = n - k; j < n; j++) {
    const t = rng.int(j + 1);
    chosen.add(chosen.has(t) ? j : t);
  }
  return Int32Array.from(chosen).sort();
}

function clientCheck(numClients: number): (c: number) => void {
  return (c) => {
    if (!Number.isInteger(c) || c < 0 || c >= numClients) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `client index ${c} is outside [0, ${numClients})`);
    }
  };
}
