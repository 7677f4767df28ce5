import { describe, expect, it } from "vitest";
import {
  bytesToVector,
  chooseScale,
  dequantizeSum,
  quantize,
  runSecAggInMemory,
} from "../common/crypto/secagg/index.js";
import { ErrorCode } from "../common/errors.js";
import { maskedSum } from "../common/strategy/partial-sum.js";
import { driveThroughShareKeys, firstDifference, modSum, randomVector } from "./secagg-helpers.js";

/** Secure aggregation over edges: each edge adds its clients' masked vectors, the coordinator unmasks the total. */

const ids = (n: number) => Array.from({ length: n }, (_, i) => `c${String(i).padStart(2, "0")}`);
const LENGTH = 500;

function inputsFor(clientIds: string[]): Map<string, Uint32Array> {
  return new Map(clientIds.map((id, i) => [id, randomVector(LENGTH, 300 + i)]));
}

const only = (inputs: Map<string, Uint32Array>, keep: (id: string) => boolean) =>
  [...inputs].filter(([id]) => keep(id)).map(([, v]) => v);

describe("masked partial sums unmask to the plain sum", () => {
  for (const graph of ["complete", "secagg+"] as const) {
    it(`${graph}: three groups' masked sums, added mod 2^32, unmask to the sum bit for bit`, async () => {
      const clientIds = ids(12);
      const inputs = inputsFor(clientIds);
      const groups = [clientIds.slice(0, 5), clientIds.slice(5, 9), clientIds.slice(9)];
      const sum = await runSecAggInMemory(inputs, { graph, groups, graphSeed: 3 });
      expect(firstDifference(sum, modSum(inputs.values(), LENGTH))).toBe(-1);
    });
  }

  it("two groups and clients of the coordinator's own, with dropouts before and after the masked input", async () => {
    const clientIds = ids(10);
    const inputs = inputsFor(clientIds);
    const sum = await runSecAggInMemory(inputs, {
      graph: "complete",
      groups: [clientIds.slice(0, 4), clientIds.slice(4, 8)],
      // c01 never sends its masked input: its pairwise masks come out through its neighbours' shares.
      dropAfterShareKeys: ["c01"],
      // c05's masked input is in its edge's sum, then it goes silent: its self mask is rebuilt from shares.
      dropBeforeUnmask: ["c05", "c09"],
    });
    expect(
      firstDifference(
        sum,
        modSum(
          only(inputs, (id) => id !== "c01"),
          LENGTH,
        ),
      ),
    ).toBe(-1);
  });

  it("quantised updates summed at two edges come back as their float sum within n/(2·scale)", async () => {
    const clientIds = ids(6);
    const clipRange = 1;
    const scale = chooseScale(clipRange, clientIds.length);
    const floats = clientIds.map((_, c) =>
      Float32Array.from({ length: LENGTH }, (_, i) => Math.cos(i * 0.07 + c) * 0.8),
    );
    const inputs = new Map(clientIds.map((id, c) => [id, quantize(floats[c], { clipRange, scale })]));
    const total = dequantizeSum(
      await runSecAggInMemory(inputs, {
        graph: "complete",
        groups: [clientIds.slice(0, 3), clientIds.slice(3)],
      }),
      scale,
    );
    for (let i = 0; i < LENGTH; i++) {
      const expected = floats.reduce((acc, f) => acc + f[i], 0);
      expect(Math.abs(total[i] - expected)).toBeLessThanOrEqual(clientIds.length / (2 * scale) + 1e-6);
    }
  });
});

describe("a masked sum the session refuses", () => {
  async function maskedInputs(clientIds: string[]) {
    const round = await driveThroughShareKeys(clientIds);
    const vectors = new Map(
      clientIds.map((id, i) => [
        id,
        bytesToVector(round.clients.get(id)!.maskedInput(round.routed[id], randomVector(LENGTH, i)).masked),
      ]),
    );
    return { ...round, vectors };
  }

  it("naming a client twice, a stranger, or a client whose input is already in", async () => {
    const { server, vectors } = await maskedInputs(ids(4));
    const sumOf = (names: string[]) => maskedSum(names.map((n) => vectors.get(n)!));
    expect(() => server.receiveMaskedSum(["c00", "c00"], sumOf(["c00", "c00"]))).toThrow(
      expect.objectContaining({ code: ErrorCode.DUPLICATE }),
    );
    expect(() => server.receiveMaskedSum(["c00", "x"], sumOf(["c00", "c01"]))).toThrow(
      expect.objectContaining({ code: ErrorCode.UNKNOWN_CLIENT }),
    );
    server.receiveMaskedSum(["c00", "c01"], sumOf(["c00", "c01"]));
    expect(() => server.receiveMaskedSum(["c01", "c02"], sumOf(["c01", "c02"]))).toThrow(
      expect.objectContaining({ code: ErrorCode.DUPLICATE }),
    );
    // Refused whole: c02 is not a survivor after the refusal.
    expect(server.survivors).toEqual(["c00", "c01"]);
  });

  it("of another length than the vectors before it", async () => {
    const { server, vectors } = await maskedInputs(ids(4));
    server.receiveMaskedSum(["c00", "c01"], maskedSum([vectors.get("c00")!, vectors.get("c01")!]));
    expect(() => server.receiveMaskedSum(["c02"], new Uint32Array(LENGTH - 1))).toThrow(
      expect.objectContaining({ code: ErrorCode.BAD_SHAPE }),
    );
    expect(server.survivors).toEqual(["c00", "c01"]);
  });
});
