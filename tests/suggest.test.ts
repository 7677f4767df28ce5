import { describe, expect, it } from "vitest";
import { z } from "zod";
import { STRATEGY_NAMES } from "../common/strategy/names.js";
import { describeIssues, didYouMean, fieldsAt, suggest } from "../common/suggest.js";

describe("did you mean", () => {
  it("offers the closest name for a slip of a key or two, ignoring case", () => {
    expect(suggest("fedprx", STRATEGY_NAMES)).toBe("fedprox");
    expect(suggest("FedAvgM", STRATEGY_NAMES)).toBe("fedavgm");
    expect(suggest("krun", STRATEGY_NAMES)).toBe("krum");
    expect(didYouMean("mulitkrum", STRATEGY_NAMES)).toBe('; did you mean "multikrum"?');
  });

  it("offers nothing when no name is close", () => {
    expect(suggest("sgd", STRATEGY_NAMES)).toBeUndefined();
    expect(suggest("", STRATEGY_NAMES)).toBeUndefined();
    expect(didYouMean("adam", [])).toBe("");
  });

  const schema = z
    .object({
      fit: z.object({ learningRate: z.number() }).strict().default({ learningRate: 1 }),
      partition: z
        .discriminatedUnion("kind", [
          z.object({ kind: z.literal("iid") }).strict(),
          z.object({ kind: z.literal("shards"), shardsPerClient: z.number() }).strict(),
        ])
        .optional(),
    })
    .strict();

  it("finds the fields an object accepts through defaults, optionals and unions", () => {
    expect(fieldsAt(schema, [])).toEqual(["fit", "partition"]);
    expect(fieldsAt(schema, ["fit"])).toEqual(["learningRate"]);
    expect(fieldsAt(schema, ["partition"]).sort()).toEqual(["kind", "shardsPerClient"]);
    expect(fieldsAt(schema, ["nowhere"])).toEqual([]);
  });

  it("describes each unknown key on its own line with the field it most likely meant", () => {
    const input = { fitt: {}, fit: { learningrate: 1, learningRate: 1 }, partition: { kind: "shard" } };
    const parsed = schema.safeParse(input);
    expect(parsed.success).toBe(false);
    const lines = describeIssues(parsed.error as z.ZodError, schema, input, "f.yaml: ");
    expect(lines).toContain('f.yaml: fitt: unknown field; did you mean "fit"?');
    expect(lines).toContain('f.yaml: fit.learningrate: unknown field; did you mean "learningRate"?');
    expect(lines.find((l) => l.startsWith("f.yaml: partition.kind: "))).toMatch(/did you mean "shards"\?$/);
  });

  it("never throws on a hostile input while describing it", () => {
    const hostile = new Proxy(
      {},
      {
        get() {
          throw new Error("boom");
        },
      },
    );
    const parsed = schema.safeParse({ fit: { learningRate: "x" } });
    expect(() => describeIssues(parsed.error as z.ZodError, schema, hostile)).not.toThrow();
  });
});
