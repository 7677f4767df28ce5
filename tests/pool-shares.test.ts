import { describe, expect, it } from "vitest";
import { ErrorCode } from "../common/errors.js";
import { assignClients, assignmentChange, quotas } from "../scenarios/sim/pool-shares.js";
import { expectError } from "./helpers/expect-error.js";

/** Every index 0..n-1 exactly once across the pools. */
function expectPartition(assignment: Map<string, number[]>, clients: number): void {
  const all = [...assignment.values()].flat().sort((a, b) => a - b);
  expect(all).toEqual(Array.from({ length: clients }, (_, i) => i));
}

describe("pool shares", () => {
  it("gives each pool a share in proportion to its cores, summing to the clients", () => {
    expect(
      quotas(30, [
        { id: "a", cores: 1 },
        { id: "b", cores: 2 },
      ]),
    ).toEqual([10, 20]);
    // 10 · (1/3, 1/3, 1/3): the one left over goes to the first pool in order.
    expect(
      quotas(10, [
        { id: "a", cores: 1 },
        { id: "b", cores: 1 },
        { id: "c", cores: 1 },
      ]),
    ).toEqual([4, 3, 3]);
    // Largest remainder: 7 · (3/8, 5/8) = 2.625, 4.375 → 3, 4.
    expect(
      quotas(7, [
        { id: "a", cores: 3 },
        { id: "b", cores: 5 },
      ]),
    ).toEqual([3, 4]);
    expect(quotas(5, [])).toEqual([]);
  });

  it("refuses a pool without cores", () => {
    expectError(() => quotas(5, [{ id: "a", cores: 0 }]), ErrorCode.INVALID_CONFIG, "pool a: cores");
  });

  it("assigns every client exactly once, by capacity", () => {
    const pools = [
      { id: "a", cores: 2 },
      { id: "b", cores: 1 },
    ];
    const out = assignClients(12, pools);
    expectPartition(out, 12);
    expect(out.get("a")).toHaveLength(8);
    expect(out.get("b")).toHaveLength(4);
  });

  it("moves only the clients a joining pool takes", () => {
    const first = assignClients(12, [{ id: "a", cores: 2 }]);
    expect(first.get("a")).toHaveLength(12);
    const owner = new Map((first.get("a") as number[]).map((i) => [i, "a"] as const));
    const second = assignClients(
      12,
      [
        { id: "a", cores: 2 },
        { id: "b", cores: 2 },
      ],
      owner,
    );
    expectPartition(second, 12);
    const change = assignmentChange(first.get("a") as number[], second.get("a") as number[]);
    expect(change.added).toEqual([]);
    expect(change.released).toHaveLength(6);
    expect(second.get("b")).toEqual(change.released);
  });

  it("gives the clients of a pool that left to the others, and keeps the rest in place", () => {
    const pools = [
      { id: "a", cores: 1 },
      { id: "b", cores: 1 },
      { id: "c", cores: 1 },
    ];
    const before = assignClients(9, pools);
    const owner = new Map<number, string>();
    for (const [id, indices] of before) for (const i of indices) owner.set(i, id);
    const after = assignClients(9, [pools[0], pools[2]], owner);
    expectPartition(after, 9);
    for (const id of ["a", "c"]) {
      const change = assignmentChange(before.get(id) as number[], after.get(id) as number[]);
      expect(change.released).toEqual([]);
    }
    expect(
      [...(after.get("a") ?? []), ...(after.get("c") ?? [])].filter((i) => owner.get(i) === "b").sort(),
    ).toEqual(before.get("b"));
  });

  it("leaves pinned clients where they are, short-changing the joining pool until they are free", () => {
    const owner = new Map(Array.from({ length: 12 }, (_, i) => [i, "a"] as const));
    const pools = [
      { id: "a", cores: 1 },
      { id: "b", cores: 1 },
    ];
    // Ten of a's twelve are busy: only two may move now, and b's quota of six waits.
    const busy = new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const now = assignClients(12, pools, owner, busy);
    expectPartition(now, 12);
    expect(now.get("a")).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(now.get("b")).toEqual([10, 11]);
    // Once they are free, the next call evens the shares out, moving only what a keeps above its quota.
    const later = new Map<number, string>(owner);
    for (const i of now.get("b") as number[]) later.set(i, "b");
    const even = assignClients(12, pools, later, new Set([0, 9]));
    expectPartition(even, 12);
    expect(even.get("a")).toEqual([0, 1, 2, 3, 4, 9]);
    expect(even.get("b")).toEqual([5, 6, 7, 8, 10, 11]);
  });

  it("frees the pinned clients of a pool that left", () => {
    const owner = new Map([
      [0, "gone"],
      [1, "gone"],
      [2, "a"],
      [3, "a"],
    ]);
    const out = assignClients(4, [{ id: "a", cores: 1 }], owner, new Set([0, 2]));
    expect(out.get("a")).toEqual([0, 1, 2, 3]);
  });

  it("with no pool left assigns nothing", () => {
    expect(assignClients(4, [], new Map([[0, "gone"]])).size).toBe(0);
  });
});
