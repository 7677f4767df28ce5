import { describe, expect, it } from "vitest";
import {
  cycles,
  type ImportGraph,
  importGraph,
  importsOf,
  matchesPattern,
  reachable,
  sourceFiles,
} from "./helpers/import-graph.js";
import {
  BENCH,
  BENCH_REFERENCES,
  BENCH_REFERENCES_NEVER_IMPORT,
  FORBIDDEN_IN_PURE_MATH,
  KNOWN_CYCLES,
  PART_IMPORTS,
  PURE_MATH,
} from "./layout-rules.js";

const PARTS = Object.keys(PART_IMPORTS);
const topFolder = (file: string) => file.split("/")[0] as string;

/** "file → imported" for every import from a part into a folder it may not import. */
function partViolations(graph: ImportGraph): string[] {
  const found: string[] = [];
  for (const [file, { local }] of graph) {
    const part = topFolder(file);
    const allowed = PART_IMPORTS[part];
    if (allowed === undefined) continue;
    for (const target of local) {
      const to = topFolder(target);
      if (to !== part && !allowed.includes(to)) found.push(`${file} → ${target}`);
    }
  }
  return found;
}

/** "file → … → package" for the first (shortest) way each pure-math file reaches a forbidden package. */
function pureViolations(graph: ImportGraph, pure: readonly string[]): string[] {
  const found: string[] = [];
  for (const start of pure) {
    const hit = [...reachable(graph, start)]
      .flatMap(([file, path]) => (graph.get(file)?.external ?? []).map((pkg) => [...path, pkg]))
      .find((path) => FORBIDDEN_IN_PURE_MATH.some((re) => re.test(path.at(-1) as string)));
    if (hit) found.push(hit.join(" → "));
  }
  return found;
}

const product = importGraph(PARTS);
const pureFiles = [...product.keys()].filter((f) => PURE_MATH.some((p) => matchesPattern(f, p)));

describe("the layout checker", () => {
  it("finds static, type-only, re-exported and dynamic imports", () => {
    const text = [
      'import { a } from "../scenarios/sim/pool.js";',
      'import type { T } from "../server/round-record.js";',
      'export { b } from "../bench/run.js";',
      'const c = await import("../scenarios/x.js");',
      'import * as tf from "@tensorflow/tfjs";',
    ].join("\n");
    const { local, external } = importsOf("client/x.ts", text);
    expect(local.sort()).toEqual([
      "bench/run.ts",
      "scenarios/sim/pool.ts",
      "scenarios/x.ts",
      "server/round-record.ts",
    ]);
    expect(external).toEqual(["@tensorflow/tfjs"]);
  });

  it("reports a part importing a folder it may not, and pure math reaching tfjs through another file", () => {
    const graph: ImportGraph = new Map([
      ["client/a.ts", { local: ["scenarios/sim/pool.ts"], external: [] }],
      ["common/dp/x.ts", { local: ["common/helper.ts"], external: [] }],
      ["common/helper.ts", { local: [], external: ["@tensorflow/tfjs", "zod"] }],
    ]);
    expect(partViolations(graph)).toEqual(["client/a.ts → scenarios/sim/pool.ts"]);
    expect(pureViolations(graph, ["common/dp/x.ts"])).toEqual([
      "common/dp/x.ts → common/helper.ts → @tensorflow/tfjs",
    ]);
  });

  it("finds an import cycle and only real ones", () => {
    const graph: ImportGraph = new Map([
      ["bench/a.ts", { local: ["bench/b.ts"], external: [] }],
      ["bench/b.ts", { local: ["bench/a.ts", "bench/c.ts"], external: [] }],
      ["bench/c.ts", { local: [], external: [] }],
    ]);
    expect(cycles(graph, new Set(graph.keys()))).toEqual([["bench/a.ts", "bench/b.ts"]]);
  });

  it("every pure-math pattern names at least one file, so the list cannot go stale silently", () => {
    const unmatched = PURE_MATH.filter((p) => !pureFiles.some((f) => matchesPattern(f, p)));
    expect(unmatched).toEqual([]);
  });
});

describe("layout", () => {
  it("each part imports only the parts it may (docs/ARCHITECTURE.md)", () => {
    for (const part of PARTS) expect(sourceFiles(part).length).toBeGreaterThan(0);
    expect(partViolations(product)).toEqual([]);
  });

  it("the client node never imports scenarios/, not even through another file", () => {
    const reached = new Set(sourceFiles("client").flatMap((f) => [...reachable(product, f).keys()]));
    expect([...reached].filter((f) => topFolder(f) === "scenarios")).toEqual([]);
  });

  it("nothing in the product imports bench/", () => {
    const reached = [...product.values()].flatMap((m) => m.local);
    expect(reached.filter((f) => topFolder(f) === BENCH)).toEqual([]);
  });

  it("pure math imports no sockets and no tfjs, directly or through another module", () => {
    expect(pureFiles.length).toBeGreaterThan(20);
    expect(pureViolations(product, pureFiles)).toEqual([]);
  });

  it("the product has no import cycles but the known ones (layout-rules.ts)", () => {
    expect(cycles(product, new Set(product.keys()))).toEqual(KNOWN_CYCLES);
  });

  it("bench/ has no import cycles", () => {
    const bench = importGraph([BENCH]);
    expect(bench.size).toBeGreaterThan(0);
    expect(cycles(bench, new Set(bench.keys()))).toEqual([]);
  });

  it("bench's references import no bench section or report", () => {
    const bench = importGraph([BENCH]);
    const offending = [...bench]
      .filter(([file]) => file.startsWith(BENCH_REFERENCES))
      .flatMap(([file, { local }]) => local.map((target) => `${file} → ${target}`))
      .filter((edge) => BENCH_REFERENCES_NEVER_IMPORT.some((folder) => edge.includes(`→ ${folder}`)));
    expect(offending).toEqual([]);
  });
});
