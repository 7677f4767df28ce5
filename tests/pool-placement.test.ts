import { describe, expect, it } from "vitest";
import { placementByRound, poolAssignment } from "../scenarios/report/pool-placement.js";

const pool = (id: string, cores: number, hosted: number[]) => ({ id, name: id.toUpperCase(), cores, hosted });

describe("pool placement per round", () => {
  it("gives each round the last spread made at or before it, in counts", () => {
    const assignments = [
      poolAssignment({ round: 3, pools: [pool("a", 1, [0, 1]), pool("b", 1, [2, 3])] }),
      poolAssignment({ round: 1, pools: [pool("a", 1, [0, 1, 2, 3])] }),
      // A second spread while building version 3 (idle clients moved later): the later one holds.
      poolAssignment({ round: 3, pools: [pool("a", 1, [0]), pool("b", 1, [1, 2, 3])] }),
    ];
    const out = placementByRound(assignments, [0, 1, 2, 3, 4]);
    expect(out.has(0)).toBe(false);
    expect(out.get(1)).toEqual([{ pool: "a", name: "A", cores: 1, clients: 4 }]);
    expect(out.get(2)).toEqual(out.get(1));
    const later = [
      { pool: "a", name: "A", cores: 1, clients: 1 },
      { pool: "b", name: "B", cores: 1, clients: 3 },
    ];
    expect(out.get(3)).toEqual(later);
    expect(out.get(4)).toEqual(later);
  });
});
