import { describe, expect, it } from "vitest";
import {
  completeGraph,
  defaultDegree,
  defaultThreshold,
  type SecAggGraph,
  secAggPlusGraph,
  validateGraph,
} from "../common/crypto/secagg/index.js";
import { ErrorCode } from "../common/errors.js";

const ids = (n: number) => Array.from({ length: n }, (_, i) => `client-${String(i).padStart(3, "0")}`);

function isConnected(graph: SecAggGraph): boolean {
  const nodes = Object.keys(graph);
  const seen = new Set([nodes[0]]);
  const queue = [nodes[0]];
  while (queue.length > 0) {
    for (const next of graph[queue.pop()!]) {
      if (!seen.has(next)) {
        seen.add(next);
        queue.push(next);
      }
    }
  }
  return seen.size === nodes.length;
}

/** Problems found, so that a large graph costs one assertion rather than thousands. */
function symmetryProblems(graph: SecAggGraph): string[] {
  const problems: string[] = [];
  for (const [id, neighbours] of Object.entries(graph)) {
    if (neighbours.includes(id)) problems.push(`${id} loops`);
    if (new Set(neighbours).size !== neighbours.length) problems.push(`${id} repeats a neighbour`);
    for (const other of neighbours) if (!graph[other]?.includes(id)) problems.push(`${id}→${other} one-way`);
  }
  return problems;
}

describe("secAggPlusGraph", () => {
  it("is symmetric, k-regular with the promised default degree, and connected", () => {
    for (const n of [5, 10, 30, 100, 300]) {
      const graph = secAggPlusGraph(ids(n), { seed: 42 });
      const k = defaultDegree(n);
      expect(k).toBe(Math.min(2 * Math.ceil(Math.log2(n)), n - 1));
      expect(symmetryProblems(graph)).toEqual([]);
      expect(Object.keys(graph)).toHaveLength(n);
      expect(Object.values(graph).filter((neighbours) => neighbours.length !== k)).toEqual([]);
      expect(isConnected(graph)).toBe(true);
      expect(() => validateGraph(ids(n), graph)).not.toThrow();
    }
    expect(defaultDegree(30)).toBe(10);
    expect(defaultDegree(100)).toBe(14);
  });

  it("honours an explicit even degree", () => {
    const graph = secAggPlusGraph(ids(50), { seed: 1, degree: 6 });
    for (const neighbours of Object.values(graph)) expect(neighbours).toHaveLength(6);
    expect(isConnected(graph)).toBe(true);
  });

  it("depends only on the seed and the set of ids", () => {
    const a = secAggPlusGraph(ids(40), { seed: 9 });
    expect(secAggPlusGraph(ids(40), { seed: 9 })).toEqual(a);
    expect(secAggPlusGraph([...ids(40)].reverse(), { seed: 9 })).toEqual(a);
    expect(secAggPlusGraph(ids(40), { seed: 10 })).not.toEqual(a);
  });

  it("is not the plain ring over sorted ids (the permutation is random)", () => {
    const graph = secAggPlusGraph(ids(40), { seed: 3 });
    const sortedRingNeighbours = ["client-001", "client-039"];
    expect(sortedRingNeighbours.every((n) => graph["client-000"].includes(n))).toBe(false);
  });

  it("becomes the complete graph when the degree reaches n−1", () => {
    expect(secAggPlusGraph(ids(4), { seed: 1 })).toEqual(completeGraph(ids(4)));
    expect(secAggPlusGraph(ids(8), { seed: 1, degree: 20 })).toEqual(completeGraph(ids(8)));
  });

  it("rejects odd degrees below n−1, duplicate ids and non-integer seeds", () => {
    const code = expect.objectContaining({ code: ErrorCode.INVALID_CONFIG });
    expect(() => secAggPlusGraph(ids(20), { seed: 1, degree: 5 })).toThrow(/degree/);
    expect(() => secAggPlusGraph(["a", "a", "b"], { seed: 1 })).toThrow(code);
    expect(() => secAggPlusGraph(ids(5), { seed: 1.5 })).toThrow(/seed/);
  });
});

describe("completeGraph and validateGraph", () => {
  it("links everyone to everyone else", () => {
    const graph = completeGraph(["c", "a", "b"]);
    expect(graph).toEqual({ a: ["b", "c"], b: ["a", "c"], c: ["a", "b"] });
  });

  it("validateGraph names asymmetric links, self loops and unknown ids", () => {
    expect(() => validateGraph(["a", "b"], { a: ["b"], b: [] })).toThrow(
      expect.objectContaining({ details: expect.arrayContaining([expect.stringMatching(/symmetric/)]) }),
    );
    expect(() => validateGraph(["a", "b"], { a: ["a", "b"], b: ["a"] })).toThrow(
      expect.objectContaining({ details: expect.arrayContaining([expect.stringMatching(/itself/)]) }),
    );
    expect(() => validateGraph(["a", "b"], { a: ["b", "z"], b: ["a"] })).toThrow(
      expect.objectContaining({ details: expect.arrayContaining([expect.stringMatching(/unknown z/)]) }),
    );
  });
});

describe("defaultThreshold", () => {
  it("is a strict majority of the k+1 holders, at most k+1 and at least 2", () => {
    for (let k = 1; k <= 254; k++) {
      const t = defaultThreshold(k);
      expect(2 * t).toBeGreaterThan(k + 1);
      expect(t).toBeLessThanOrEqual(k + 1);
      expect(t).toBeGreaterThanOrEqual(2);
    }
    expect(defaultThreshold(9)).toBe(7); // complete graph of 10: tolerates 3 dropouts
    expect(defaultThreshold(10)).toBe(8);
    expect(() => defaultThreshold(0)).toThrow(/neighbourCount/);
  });
});
