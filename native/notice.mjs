/**
 * The one line a user without the native kernels reads at install time: why they are missing, what that
 * costs (wasm instead of native, how much slower), and how to get them.
 *
 * How much slower comes from the committed benchmark (bench/results/latest.json, in a checkout), so the
 * message never quotes a figure the project no longer measures; an installed package, which ships no
 * results, says so in words.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const LATEST = path.join(
  path.dirname(path.dirname(fileURLToPath(import.meta.url))),
  "bench",
  "results",
  "latest.json",
);

/**
 * native ÷ wasm training throughput over the cases a results file measured both ways, as [lowest, highest],
 * or undefined when it has no such pair.
 */
export function nativeOverWasm(results) {
  const rows = Array.isArray(results?.training) ? results.training : [];
  const speed = (backend, row) =>
    rows.find((r) => r.backend === backend && r.model === row.model && r.batch === row.batch)?.examplesPerSec;
  const ratios = rows
    .filter((row) => row.backend === "native")
    .map((row) => speed("native", row) / speed("wasm", row))
    .filter((ratio) => Number.isFinite(ratio) && ratio > 0);
  return ratios.length === 0 ? undefined : [Math.min(...ratios), Math.max(...ratios)];
}

function roundRatio(ratio) {
  return ratio >= 10 ? Math.round(ratio) : Math.round(ratio * 10) / 10;
}

/** "4.2–12× slower (bench/results/latest.json)", or words when no results file is at hand. */
export function slowdownPhrase(file = LATEST) {
  let range;
  try {
    range = nativeOverWasm(JSON.parse(readFileSync(file, "utf8")));
  } catch {
    range = undefined;
  }
  if (range === undefined) return "several times slower";
  const [low, high] = range.map(roundRatio);
  return `${low === high ? low : `${low}–${high}`}× slower (bench/results/latest.json)`;
}

/** The notice: one line, always with what training falls back to and, when known, the command that fixes it. */
export function wasmNotice(reason, remedy, file = LATEST) {
  const fix = remedy === undefined ? "" : `; to get them: ${remedy}`;
  return `fedsim native kernels: not available (${reason}); fedsim will train on wasm, ${slowdownPhrase(file)}${fix}`;
}
