import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { errorMessage } from "../timing.js";
import { scriptPath } from "./torch-reference.js";

/**
 * Compiles bench/references/aggregation_reference.cc (the physical-limit weighted sum) with g++
 * `-O3 -march=native -fopenmp` into a temporary Node-API module and loads it. Built fresh on every
 * benchmark run, for this very CPU; the product never loads it.
 */
export interface AggregationReference {
  /** out[i] = Σ_k weights[k]·vectors[k][i] in float32, on `threads` OpenMP threads. */
  weightedSum(
    vectors: readonly Float32Array[],
    weights: Float32Array,
    out: Float32Array,
    threads: number,
  ): void;
  /** The compile command, for the report. */
  command: string;
  dispose(): void;
}

const SOURCE = "aggregation_reference.cc";
const FLAGS = ["-std=c++17", "-O3", "-march=native", "-fopenmp", "-fPIC", "-shared"];

function nodeHeaders(): string | undefined {
  const candidates = [
    path.join(path.dirname(process.execPath), "..", "include", "node"),
    "/usr/include/node",
    "/usr/local/include/node",
  ];
  return candidates.find((dir) => existsSync(path.join(dir, "node_api.h")));
}

/** The compiled reference, or a string saying why there is none (no g++, no Node-API headers). */
export async function buildAggregationReference(): Promise<AggregationReference | string> {
  const source = scriptPath(SOURCE);
  if (source === undefined) return `bench/references/${SOURCE} not found`;
  const headers = nodeHeaders();
  if (headers === undefined) return "Node-API headers (node_api.h) not found";
  const cxx = process.env["CXX"] ?? "g++";
  const dir = mkdtempSync(path.join(os.tmpdir(), "fedsim-aggregation-reference-"));
  const output = path.join(dir, "aggregation_reference.node");
  const args = [
    ...FLAGS,
    "-DNODE_GYP_MODULE_NAME=aggregation_reference",
    `-I${headers}`,
    source,
    "-o",
    output,
  ];
  try {
    await promisify(execFile)(cxx, args, { timeout: 120_000 });
    const loaded = createRequire(import.meta.url)(output) as Pick<AggregationReference, "weightedSum">;
    return {
      weightedSum: (vectors, weights, out, threads) => loaded.weightedSum(vectors, weights, out, threads),
      command: `${cxx} ${FLAGS.join(" ")} ${SOURCE}`,
      dispose: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    return `compiling ${SOURCE} failed: ${errorMessage(err)}`;
  }
}
