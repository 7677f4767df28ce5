/**
 * The benchmark suite behind `npm run bench`. Usage:
 *   node dist/bench/run.js [--quick] [--only training,aggregation,privacy,transfer]
 * Writes bench/results/latest.json and docs/BENCHMARKS.md, and prints the tables.
 * With --only, sections not run are carried over from the previous latest.json.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runAggregation } from "./aggregation.js";
import { describeEnvironment } from "./environment.js";
import { runPrivacy } from "./privacy.js";
import { type BenchResults, renderMarkdown, renderText, SECTION_NAMES, type SectionName } from "./report.js";
import { errorMessage } from "./timing.js";
import { runTraining } from "./training.js";
import { runTransfer } from "./transfer.js";

function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, "package.json")) && existsSync(path.join(dir, "bench"))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return process.cwd();
    dir = parent;
  }
}

function parseSections(only: string | undefined): SectionName[] {
  if (only === undefined) return [...SECTION_NAMES];
  const requested = only
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  const unknown = requested.filter((s) => !(SECTION_NAMES as readonly string[]).includes(s));
  if (unknown.length > 0 || requested.length === 0) {
    throw new Error(`--only takes a comma-separated list of ${SECTION_NAMES.join(", ")}; got "${only}"`);
  }
  return SECTION_NAMES.filter((s) => requested.includes(s));
}

function readPrevious(file: string): BenchResults | undefined {
  try {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as BenchResults;
    return parsed.schema === 1 ? parsed : undefined;
  } catch {
    return undefined;
  }
}

function writeAtomically(file: string, content: string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const temporary = `${file}.tmp`;
  writeFileSync(temporary, content);
  renameSync(temporary, file);
}

function emptyResults(quick: boolean, sections: SectionName[]): BenchResults {
  return {
    schema: 1,
    generatedAt: new Date().toISOString(),
    command: ["node", "dist/bench/run.js", ...process.argv.slice(2)].join(" "),
    quick,
    sectionsRun: sections,
    measured: {},
    environment: { ...describeEnvironment(), backends: null, torch: null, blasConfig: null },
    reference: null,
    training: null,
    aggregation: null,
    privacy: null,
    transfer: null,
    errors: {},
  };
}

/** Keeps the sections this run does not measure, so a partial run does not erase a full one. */
function carryOver(results: BenchResults, previous: BenchResults | undefined): void {
  if (previous === undefined) return;
  for (const section of SECTION_NAMES) {
    if (results.sectionsRun.includes(section)) continue;
    const at = previous.measured?.[section];
    if (at === undefined) continue;
    results.measured[section] = at;
    if (section === "training") {
      results.training = previous.training;
      results.reference = previous.reference;
      results.environment.backends = previous.environment.backends;
      results.environment.torch = previous.environment.torch;
      results.environment.blasConfig = previous.environment.blasConfig;
    } else if (section === "aggregation") results.aggregation = previous.aggregation;
    else if (section === "privacy") results.privacy = previous.privacy;
    else results.transfer = previous.transfer;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      only: { type: "string" },
      quick: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(
      `usage: node dist/bench/run.js [--quick] [--only ${SECTION_NAMES.join(",")}]\n` +
        "Writes bench/results/latest.json and docs/BENCHMARKS.md.",
    );
    return;
  }
  const quick = values.quick ?? false;
  const sections = parseSections(values.only);
  const root = repoRoot();
  const jsonFile = path.join(root, "bench", "results", "latest.json");
  const markdownFile = path.join(root, "docs", "BENCHMARKS.md");
  const results = emptyResults(quick, sections);
  carryOver(results, readPrevious(jsonFile));
  const log = (line: string) => console.error(`[bench] ${line}`);

  for (const section of sections) {
    const started = performance.now();
    try {
      const options = { quick, log };
      if (section === "training") {
        const training = await runTraining(options);
        results.training = training.rows;
        results.reference = training.reference;
        results.environment.backends = training.backends;
        results.environment.torch = training.reference.torch;
        results.environment.blasConfig = training.reference.openblasConfig ?? training.reference.blas;
      } else if (section === "aggregation") results.aggregation = await runAggregation(options);
      else if (section === "privacy") results.privacy = await runPrivacy(options);
      else results.transfer = await runTransfer(options);
      results.measured[section] = { at: new Date().toISOString(), quick };
    } catch (err) {
      results.errors[section] = errorMessage(err);
      log(`${section} failed: ${results.errors[section]}`);
    }
    log(`${section}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }

  results.environment.loadAverage.end = Number(os.loadavg()[0].toFixed(2));
  writeAtomically(jsonFile, `${JSON.stringify(results, null, 2)}\n`);
  writeAtomically(markdownFile, renderMarkdown(results));
  console.log(renderText(results));
  console.log(
    `\nwrote ${path.relative(process.cwd(), jsonFile)} and ${path.relative(process.cwd(), markdownFile)}`,
  );
}

main().then(
  // tfjs and Socket.IO may leave handles open; the results are written, so leave now.
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench: ${errorMessage(err)}`);
    process.exit(1);
  },
);
