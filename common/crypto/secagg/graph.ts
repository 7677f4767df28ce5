import { ErrorCode, FedsimError } from "../../errors.js";
import { createRng, shuffleInPlace } from "../../rng.js";
import { clientIdSchema } from "./messages.js";

/**
 * Masking graphs: who shares pairwise masks (and Shamir shares) with whom.
 *
 * SecAgg (Bonawitz et al. 2017) uses the complete graph: O(n) keys, shares and masks per client.
 * SecAgg+ (Bell et al. 2020) uses a sparse k-regular graph with k = O(log n): a Harary graph H(k, n)
 * (a ring in which each node links to its k/2 nearest nodes on each side) laid over a seeded random
 * permutation. Bell et al.'s guarantees assume the graph is drawn at random and not chosen by an
 * adversary; in fedsim the coordinator draws the seed, which fits an honest-but-curious server
 * (docs/SECAGG.md says what a malicious one would need instead).
 *
 * A graph maps each id to its neighbours, sorted, never including itself; it is symmetric.
 */
export type SecAggGraph = Record<string, string[]>;

/** Shamir shares are x-coordinates in GF(2^8): a client plus its neighbours must fit in 255. */
export const MAX_SHARE_HOLDERS = 255;

export function completeGraph(ids: string[]): SecAggGraph {
  const sorted = sortedUniqueIds(ids);
  const graph: SecAggGraph = {};
  for (const id of sorted) graph[id] = sorted.filter((other) => other !== id);
  return graph;
}

export interface SecAggPlusGraphOptions {
  /** Neighbours per client, even; default: smallest even k ≥ 2·ceil(log2 n), clamped to n−1. */
  degree?: number;
  /** Seed of the random permutation; the same seed and ids always give the same graph. */
  seed: number;
}

/** The default SecAgg+ degree for n clients: 2·ceil(log2 n) (already even), clamped to n−1. */
export function defaultDegree(clientCount: number): number {
  if (clientCount <= 1) return 0;
  return Math.min(2 * Math.ceil(Math.log2(clientCount)), clientCount - 1);
}

export function secAggPlusGraph(ids: string[], options: SecAggPlusGraphOptions): SecAggGraph {
  const sorted = sortedUniqueIds(ids);
  const n = sorted.length;
  if (!Number.isInteger(options.seed)) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `seed must be an integer (got ${options.seed})`);
  }
  const degree = options.degree ?? defaultDegree(n);
  if (!Number.isInteger(degree) || degree < 0) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `degree must be a non-negative integer (got ${degree})`);
  }
  if (n > 1 && degree < 1) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `degree must be at least 1 for ${n} clients`);
  }
  // With k ≥ n−1 every node links to every other: the complete graph is the only k-regular one.
  if (degree >= n - 1) return completeGraph(sorted);
  if (degree % 2 !== 0) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `degree must be even (got ${degree}): the ring links k/2 neighbours on each side`,
    );
  }

  // Sorting first makes the graph depend on the set of ids and the seed, not on input order.
  const order = [...sorted];
  shuffleInPlace(order, createRng(options.seed));
  const neighbours = new Map<string, Set<string>>(order.map((id) => [id, new Set<string>()]));
  const half = degree / 2;
  for (let position = 0; position < n; position++) {
    for (let step = 1; step <= half; step++) {
      const a = order[position];
      const b = order[(position + step) % n];
      neighbours.get(a)!.add(b);
      neighbours.get(b)!.add(a);
    }
  }
  const graph: SecAggGraph = {};
  for (const id of sorted) graph[id] = [...neighbours.get(id)!].sort(compareIds);
  return graph;
}

/**
 * The default Shamir threshold for a client with `neighbourCount` neighbours. Shares go to the
 * client itself and each neighbour (k+1 holders, as in the paper where U1 includes the sender),
 * and t = floor(2(k+1)/3) + 1, clamped to [2, k+1].
 *
 * Why: t must exceed half of the k+1 holders, so that two disjoint groups of honest holders cannot
 * both reach t, which would be needed to reveal both a client's self-mask seed (it "survived") and
 * its mask key (it "dropped"). Two thirds rather than a bare majority also keeps a client's secrets
 * safe if the server colludes with fewer than t of its holders, while still tolerating about a
 * third of each neighbourhood (k+1−t holders) dropping out.
 */
export function defaultThreshold(neighbourCount: number): number {
  if (!Number.isInteger(neighbourCount) || neighbourCount < 1) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `neighbourCount must be a positive integer (got ${neighbourCount})`,
    );
  }
  const holders = neighbourCount + 1;
  return Math.min(holders, Math.max(2, Math.floor((2 * holders) / 3) + 1));
}

/** The order used for mask signs and for share assignment: plain UTF-16 string order. */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Checks that a graph is symmetric, loop-free and exactly over `ids`; returns a Set view. */
export function validateGraph(ids: readonly string[], graph: SecAggGraph): Map<string, Set<string>> {
  const problems: string[] = [];
  const idSet = new Set(ids);
  const sets = new Map<string, Set<string>>();
  for (const id of ids) {
    const list = Object.hasOwn(graph, id) ? graph[id] : undefined;
    if (!Array.isArray(list)) {
      problems.push(`graph has no entry for client ${id}`);
      continue;
    }
    const set = new Set(list);
    if (set.size !== list.length) problems.push(`graph lists a neighbour of ${id} twice`);
    if (set.has(id)) problems.push(`graph links ${id} to itself`);
    for (const other of set) if (!idSet.has(other)) problems.push(`graph links ${id} to unknown ${other}`);
    sets.set(id, set);
  }
  for (const key of Object.keys(graph)) if (!idSet.has(key)) problems.push(`graph has unknown client ${key}`);
  for (const [id, set] of sets) {
    for (const other of set) {
      if (sets.get(other) && !sets.get(other)!.has(id))
        problems.push(`graph is not symmetric: ${id}→${other}`);
    }
  }
  if (problems.length > 0) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      "graph is not a valid SecAgg graph",
      problems.slice(0, 20),
    );
  }
  return sets;
}

function sortedUniqueIds(ids: string[]): string[] {
  if (!Array.isArray(ids)) throw new FedsimError(ErrorCode.INVALID_CONFIG, "ids must be an array of strings");
  for (const id of ids) {
    if (typeof id !== "string" || id.length === 0) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, "ids must be non-empty strings");
    }
  }
  const sorted = [...new Set(ids)].sort(compareIds);
  if (sorted.length !== ids.length) throw new FedsimError(ErrorCode.INVALID_CONFIG, "ids must be unique");
  return sorted;
}

/**
 * A server session's options checked (docs/SECAGG.md): a uint32 round, at least 2 unique ids, a
 * graph over exactly them, and a threshold that is a majority of every client's share holders.
 * Returns the graph as neighbour sets.
 */
export function validateSessionOptions(options: {
  round: number;
  clientIds: string[];
  graph: SecAggGraph;
  threshold: number;
  vectorLength?: number;
}): Map<string, Set<string>> {
  const { round, clientIds, graph, threshold, vectorLength } = options;
  if (!Number.isInteger(round) || round < 0 || round > 0xffff_ffff) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `round must be a uint32 (got ${round})`);
  }
  if (!Array.isArray(clientIds) || clientIds.length < 2) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, "clientIds must list at least 2 clients");
  }
  for (const id of clientIds) {
    if (!clientIdSchema.safeParse(id).success) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, "clientIds must be strings of 1 to 256 characters");
    }
  }
  if (new Set(clientIds).size !== clientIds.length) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, "clientIds must be unique");
  }
  const neighbours = validateGraph(clientIds, graph);
  if (!Number.isInteger(threshold) || threshold < 2) {
    throw new FedsimError(ErrorCode.INVALID_CONFIG, `threshold must be an integer ≥ 2 (got ${threshold})`);
  }
  for (const [id, set] of neighbours) {
    const holders = set.size + 1;
    if (holders > MAX_SHARE_HOLDERS) {
      throw new FedsimError(ErrorCode.INVALID_CONFIG, `graph: ${id} has ${set.size} neighbours, max 254`);
    }
    if (threshold > holders || 2 * threshold <= holders) {
      throw new FedsimError(
        ErrorCode.INVALID_CONFIG,
        `threshold ${threshold} must be a majority of ${id}'s ${holders} share holders and at most ${holders}`,
      );
    }
  }
  if (vectorLength !== undefined && (!Number.isInteger(vectorLength) || vectorLength < 1)) {
    throw new FedsimError(
      ErrorCode.INVALID_CONFIG,
      `vectorLength must be a positive integer (got ${vectorLength})`,
    );
  }
  return neighbours;
}
